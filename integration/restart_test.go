package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Containers that run across a restart of containerd are deleted cleanly.
func TestContainerdRestart(t *testing.T) {
	tc := newFaultCase(t)
	for _, c := range []struct{ id, class string }{{"rs-web", "web"}, {"rs-vm", "vmloop"}, {"rs-db", "db"}} {
		cmd := "echo kept > /root/mark; sleep 600"
		if c.class != "vmloop" {
			cmd = "sleep 600"
		}
		if out, err := tc.start(c.id, image1, []string{class(c.class), volName(c.id)}, "sh", "-c", cmd); err != nil {
			t.Fatalf("start %s: %v: %s", c.id, err, out)
		}
	}
	if err := command(daemon.repo, "scripts/containerd.sh", "stop", daemon.dir); err != nil {
		t.Fatal(err)
	}
	if err := startDaemon(); err != nil {
		t.Fatal(err)
	}
	out, err := ctr(tc.namespace, "task", "ls")
	if err != nil || strings.Count(out, "RUNNING") < 3 {
		t.Fatalf("containers did not survive the restart: %v: %s", err, out)
	}
	for _, id := range []string{"rs-web", "rs-vm", "rs-db"} {
		if err := tc.remove(id); err != nil {
			t.Fatal(err)
		}
	}
	tc.assertClean()
	out = tc.mustRun("rs-vm2", image1, []string{class("vmloop"), volName("rs-vm")}, "cat", "/root/mark")
	mustContain(t, out, "kept")
}

// A "reboot": containerd, every shim and every container killed with
// SIGKILL, everything unmounted, then containerd started again. Cleanup at
// start and `persistctl gc` clear what is left; volumes attach with their data.
func TestReboot(t *testing.T) {
	tc := newFaultCase(t)
	ids := []string{"rb-web", "rb-vm", "rb-db"}
	classes := []string{"web", "vmloop", "db"}
	for i, id := range ids {
		cmd := "echo kept > /root/mark; sync; sleep 600"
		if classes[i] == "db" {
			cmd = "echo kept > /var/lib/db/mark; sync; sleep 600"
		}
		if out, err := tc.start(id, image1, []string{class(classes[i]), volName(id)}, "sh", "-c", cmd); err != nil {
			t.Fatalf("start %s: %v: %s", id, err, out)
		}
	}
	marks := []string{"", "root/mark", "var/lib/db/mark"} // the web root is read-only
	for i, id := range ids {
		tc.eventually("the containers to write their marks", func() bool {
			out, _ := ctr(tc.namespace, "task", "ls")
			if !strings.Contains(out, id) {
				return false
			}
			if marks[i] == "" {
				return true
			}
			// Kill only after the write: look through the container's root.
			_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(tc.initPID(id)), "root", marks[i]))
			return err == nil
		})
	}
	var pids []int
	for _, id := range ids {
		pids = append(pids, tc.shimPID(id), tc.initPID(id))
	}
	b, err := os.ReadFile(filepath.Join(daemon.dir, "containerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pids = append(pids, atoi(string(b)))
	for _, pid := range pids {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
	}
	for _, pid := range pids {
		tc.eventually("the killed processes to go", func() bool { return !alive(pid) })
	}
	// What a reboot does to mounts: the shims' rootfs and all of ours.
	unmountUnder(filepath.Join(daemon.dir, "state"))
	unmountUnder(tc.dir)
	if err := startDaemon(); err != nil {
		t.Fatal(err)
	}
	out, err := tc.persistctl("gc")
	if err != nil {
		t.Fatalf("gc: %v: %s", err, out)
	}
	for _, id := range ids {
		if err := tc.remove(id); err != nil {
			t.Fatal(err)
		}
	}
	tc.assertClean()
	out = tc.mustRun("rb-vm2", image1, []string{class("vmloop"), volName("rb-vm")}, "cat", "/root/mark")
	mustContain(t, out, "kept")
	out = tc.mustRun("rb-db2", image1, []string{class("db"), volName("rb-db")}, "cat", "/var/lib/db/mark")
	mustContain(t, out, "kept")
}
