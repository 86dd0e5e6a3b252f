package integration

import (
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const faultConfig = machineConfig + `
[classes.web]
mode = "immutable"
selectable = true
[[classes.web.scratch]]
path = "/tmp"
size = "8MiB"
[[classes.web.scratch]]
path = "/var/tmp"
medium = "disk"
size = "16MiB"

[classes.fileinimage]
mode = "immutable"
selectable = true
[[classes.fileinimage.scratch]]
path = "/tmp"
medium = "disk"
size = "16MiB"
[[classes.fileinimage.scratch]]
path = "/etc/passwd"
size = "1MiB"

[backends.gone]
type = "dir"
path = "/nonexistent/persist-backend"

[classes.nobackend]
mode = "immutable"
selectable = true
[[classes.nobackend.scratch]]
path = "/tmp"
medium = "disk"
size = "16MiB"
[[classes.nobackend.volumes]]
path = "/data"
backend = "gone"
name = "{name}"
`

func newFaultCase(t *testing.T) *tcase { return newBackendCase(t, faultConfig) }

func TestShimKilledLeavesNothing(t *testing.T) {
	tc := newFaultCase(t)
	for _, c := range []struct{ id, class string }{{"k-web", "web"}, {"k-vm", "vmloop"}, {"k-db", "db"}} {
		if out, err := tc.start(c.id, image1, []string{class(c.class), volName(c.id)}, "sleep", "600"); err != nil {
			t.Fatalf("start %s: %v: %s", c.id, err, out)
		}
		if len(mountsUnder(tc.dir)) == 0 {
			t.Fatalf("%s: nothing mounted while it runs", c.id)
		}
		tc.killShim(c.id)
		if err := tc.remove(c.id); err != nil {
			t.Fatal(err)
		}
		tc.assertClean()
	}
	// The volumes attach again.
	tc.mustRun("k-vm2", image1, []string{class("vmloop"), volName("k-vm")}, "true")
	tc.mustRun("k-db2", image1, []string{class("db"), volName("k-db")}, "true")
}

// Durability: a writer appends checksummed, fsynced records; its shim is
// killed at a random moment, round after round. After every re-attach each
// record is there and intact, and none went missing.
func TestShimKilledWhileWriting(t *testing.T) {
	tc := newFaultCase(t)
	for _, cls := range []string{"vm", "vmloop", "db"} {
		t.Run(cls, func(t *testing.T) {
			dir := map[string]string{"vm": "/root", "vmloop": "/root", "db": "/var/lib/db"}[cls]
			ann := []string{class(cls), volName("w-" + cls)}
			// Each record is "N md5(N)", appended and fsynced before the next;
			// a new writer carries on from the last record.
			script := fmt.Sprintf(`cd %s; i=0; [ -s log ] && i=$(( $(tail -n 1 log | cut -d" " -f1) + 1 ))
while true; do echo "$i $(echo $i | md5sum | cut -c1-8)" >> log; sync log; i=$((i+1)); done`, dir)
			last := 0
			for round := range rounds(3) {
				id := fmt.Sprintf("writer-%s-%d", cls, round)
				if out, err := tc.start(id, image1, ann, "sh", "-c", script); err != nil {
					t.Fatalf("round %d: start: %v: %s", round, err, out)
				}
				time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond) // a random moment
				tc.killShim(id)
				if err := tc.remove(id); err != nil {
					t.Fatal(err)
				}
				tc.assertClean()
				out := tc.mustRun(id+"-check", image1, ann, "cat", dir+"/log")
				n := checkRecords(t, out)
				if n <= last {
					t.Fatalf("round %d: %d records after the kill, %d before it", round, n, last)
				}
				last = n
			}
		})
	}
}

// checkRecords checks that out holds the records 0..n-1, each intact, and
// returns n.
func checkRecords(t *testing.T, out string) int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, l := range lines {
		sum := md5.Sum([]byte(fmt.Sprintf("%d\n", i)))
		if want := fmt.Sprintf("%d %x", i, sum[:4]); l != want {
			t.Fatalf("record %d of %d is %q, want %q", i, len(lines), l, want)
		}
	}
	return len(lines)
}

// rounds is how many rounds a stress test runs: def, or PERSIST_ROUNDS
// (make stress sets it).
func rounds(def int) int {
	if n, err := strconv.Atoi(os.Getenv("PERSIST_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return def
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	tc := newFaultCase(t)
	cases := []struct {
		name, class string
		cmd         []string
		want        string
	}{
		{"scratch-on-file", "fileinimage", []string{"true"}, "/etc/passwd is not a directory in the image"},
		{"missing-backend", "nobackend", []string{"true"}, "directory /nonexistent/persist-backend does not exist: create it"},
		{"runc-fails", "db", []string{"/no/such/program"}, "no such file"},
		{"runc-fails-vm", "vmloop", []string{"/no/such/program"}, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := tc.run("f-"+c.name, image1, []string{class(c.class), volName("f-" + c.name)}, c.cmd...)
			if err == nil {
				t.Fatalf("create succeeded: %s", out)
			}
			mustContain(t, out, c.want)
			if err := tc.remove("f-" + c.name); err != nil {
				t.Fatal(err)
			}
			tc.assertClean()
		})
	}
	// A volume whose create failed attaches again.
	tc.mustRun("f-again", image1, []string{class("vmloop"), volName("f-runc-fails-vm")}, "true")
}
