package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

const spareConfig = `
default_class = "web"

[classes.web]
mode = "immutable"
selectable = true
[[classes.web.scratch]]
path = "/var/tmp"
medium = "disk"
size = "16MiB"

[classes.big]
mode = "immutable"
selectable = true
[[classes.big.scratch]]
path = "/var/tmp"
medium = "disk"
size = "32MiB"
`

// spares lists the spare scratch filesystems kept in the state dir, and
// fails the test unless each is mounted.
func (tc *tcase) spares() []string {
	tc.t.Helper()
	dir := filepath.Join(tc.stateDir, "spare")
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if ok, err := mountinfo.Mounted(filepath.Join(dir, e.Name(), "fs")); !ok || err != nil {
			tc.t.Errorf("spare %s is not mounted: %v", e.Name(), err)
		}
	}
	return names
}

// A released disk scratch is emptied and kept, mounted, for the next
// container that asks for one of its size, which finds nothing of the
// last one in it and still gets its size, no more. A scratch left with
// many files is not kept. A reservation that finds its filesystem full
// drains the spares first, and `persistctl gc` removes them.
func TestDiskScratchSpares(t *testing.T) {
	tc := newCase(t, spareConfig)
	// Room for one 32 MiB scratch and a 16 MiB spare's templates, not for
	// both scratch images.
	tc.mountTmpfs(tc.stateDir, 44<<20)

	tc.mustRun("spare-a", image1, nil, "sh", "-c", "echo tenant-a > /var/tmp/left; mkdir /var/tmp/d; echo x > /var/tmp/d/f")
	if got := tc.spares(); len(got) != 1 || !strings.HasPrefix(got[0], "16777216-") {
		t.Fatalf("spares after a release = %q, want one of 16 MiB", got)
	}

	if out, err := tc.start("spare-b", image1, nil, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	if got := tc.spares(); len(got) != 0 {
		t.Errorf("spares while the next container holds it = %q, want none", got)
	}
	out := tc.ctrExec("spare-b", "sh", "-c", "ls -A /var/tmp; echo listed; dd if=/dev/zero of=/var/tmp/fill bs=1M count=17 2>&1; echo written")
	if before, _, _ := strings.Cut(out, "listed"); strings.TrimSpace(before) != "" {
		t.Errorf("the next container's /var/tmp holds %q, want it empty", before)
	}
	mustContain(t, out, "No space left on device", "written")
	if err := tc.remove("spare-b"); err != nil {
		t.Fatal(err)
	}
	if got := tc.spares(); len(got) != 1 {
		t.Errorf("spares after the second release = %q, want one", got)
	}

	// 2,000 files would take longer to remove than the unmount: the
	// container that took the spare does not give it back.
	tc.mustRun("spare-many", image1, nil, "sh", "-c", "cd /var/tmp && seq 2000 | xargs touch")
	if got := tc.spares(); len(got) != 0 {
		t.Errorf("spares after releasing a scratch with 2,000 files = %q, want none", got)
	}
	tc.mustRun("spare-c", image1, nil, "true")
	if got := tc.spares(); len(got) != 1 {
		t.Errorf("spares after a release = %q, want one", got)
	}

	// The 16 MiB spare holds its space: the 32 MiB scratch fits only once
	// it is drained.
	out = tc.mustRun("spare-big", image1, []string{class("big")}, "sh", "-c", "df -k /var/tmp | tail -1; echo ran")
	mustContain(t, out, "ran")
	if got := tc.spares(); len(got) != 1 || !strings.HasPrefix(got[0], "33554432-") {
		t.Errorf("spares after the 32 MiB release = %q, want only one of 32 MiB", got)
	}

	out, err := tc.persistctl("gc", "--dry-run")
	if err != nil {
		t.Fatalf("gc --dry-run: %v: %s", err, out)
	}
	mustContain(t, out, "spare", "kept mounted for the next container")
	if out, err := tc.persistctl("gc"); err != nil {
		t.Fatalf("gc: %v: %s", err, out)
	}
	if got := tc.spares(); len(got) != 0 {
		t.Errorf("spares after gc = %q, want none", got)
	}
	for _, m := range mountsUnder(tc.stateDir) {
		if m != tc.stateDir {
			t.Errorf("left mounted after gc: %s", m)
		}
	}
}
