package integration

import (
	"fmt"
	"os"
	"path/filepath"
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

func newFaultCase(t *testing.T) *tcase {
	tc := newCase(t, faultConfig)
	for _, backend := range []string{"volumes", "images"} {
		if err := os.Mkdir(filepath.Join(tc.dir, backend), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

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

func TestShimKilledWhileWriting(t *testing.T) {
	tc := newFaultCase(t)
	for _, cls := range []string{"vm", "vmloop", "db"} {
		t.Run(cls, func(t *testing.T) {
			dir := map[string]string{"vm": "/root", "vmloop": "/root", "db": "/var/lib/db"}[cls]
			ann := []string{class(cls), volName("w-" + cls)}
			id := "writer-" + cls
			// Each record is appended and fsynced before the next.
			script := fmt.Sprintf("i=0; while true; do echo rec$i >> %s/log; sync %s/log; i=$((i+1)); done", dir, dir)
			if out, err := tc.start(id, image1, ann, "sh", "-c", script); err != nil {
				t.Fatalf("start: %v: %s", err, out)
			}
			time.Sleep(300 * time.Millisecond) // let it write some records
			tc.killShim(id)
			if err := tc.remove(id); err != nil {
				t.Fatal(err)
			}
			tc.assertClean()
			out := tc.mustRun(id+"-check", image1, ann, "cat", dir+"/log")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) < 2 {
				t.Fatalf("too few records were written: %q", out)
			}
			for i, l := range lines {
				if l != fmt.Sprintf("rec%d", i) {
					t.Fatalf("record %d is %q, want rec%d (of %d records)", i, l, i, len(lines))
				}
			}
		})
	}
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
