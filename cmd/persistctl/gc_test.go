package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/journal"
)

func TestGC(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	state := filepath.Join(w.dir, "state")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// A dead container: a journal with a tmpfs scratch mount and a lock.
	dead := filepath.Join(state, "journal", "default", "dead")
	scratch := filepath.Join(state, "scratch", "default", "dead")
	lock := filepath.Join(state, "locks", "default", "vol")
	j, err := journal.Create(dead)
	must(err)
	for _, s := range []journal.Step{{Kind: journal.Dir, Path: scratch}, {Kind: journal.Mount, Path: scratch}, {Kind: journal.Lock, Path: lock}} {
		must(j.Record(s))
	}
	must(os.MkdirAll(scratch, 0o700))
	must(unix.Mount("tmpfs", scratch, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(scratch, unix.MNT_DETACH) })
	must(os.MkdirAll(filepath.Dir(lock), 0o700))
	must(os.WriteFile(lock, nil, 0o600))
	must(j.Close())
	// A stale lock and a half-made volume.
	stale := filepath.Join(state, "locks", "default", "stale")
	must(os.WriteFile(stale, nil, 0o600))
	half := filepath.Join(w.dir, "volumes", "default", ".creating-half-0123456789ab")
	must(os.MkdirAll(filepath.Join(half, "fs"), 0o700))
	// A live container's journal, held by this process.
	livePath := filepath.Join(state, "journal", "default", "live")
	live, err := journal.Create(livePath)
	must(err)
	defer live.Close()
	liveDir := filepath.Join(state, "scratch", "default", "live")
	must(live.Record(journal.Step{Kind: journal.Dir, Path: liveDir}))
	must(os.MkdirAll(liveDir, 0o700))

	want := []string{"journal " + dead, "lock " + stale, "lock " + lock, "volume " + half}
	var listed []gcResult
	w.okJSON(&listed, "gc", "--dry-run", "--json")
	if got := gcKinds(listed); !slices.Equal(got, want) {
		t.Fatalf("gc --dry-run lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range listed {
		if r.Removed || r.Error != "" || r.What == "" {
			t.Errorf("dry run: %+v", r)
		}
	}
	for _, p := range []string{dead, lock, stale, half, scratch} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("gc --dry-run removed %s", p)
		}
	}
	if ok, _ := mountinfo.Mounted(scratch); !ok {
		t.Error("gc --dry-run unmounted the scratch")
	}
	if table := w.ok("gc", "--dry-run"); !strings.Contains(table, "found") || !strings.Contains(table, dead) {
		t.Errorf("gc --dry-run table:\n%s", table)
	}

	var done []gcResult
	w.okJSON(&done, "gc", "--json")
	if got := gcKinds(done); !slices.Equal(got, want) {
		t.Fatalf("gc removed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range done {
		if !r.Removed || r.Error != "" {
			t.Errorf("gc: %+v", r)
		}
	}
	for _, p := range []string{dead, lock, stale, half, scratch} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("gc left %s: %v", p, err)
		}
	}
	if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(w.dir)); len(ms) > 0 {
		t.Errorf("gc left mounts: %v", ms)
	}
	for _, p := range []string{livePath, liveDir} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("gc touched the live container's %s: %v", p, err)
		}
	}
	if out := w.ok("gc"); out != "nothing to remove\n" {
		t.Errorf("a second gc printed %q", out)
	}
}

func gcKinds(rs []gcResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Kind+" "+r.Path)
	}
	slices.Sort(out)
	return out
}
