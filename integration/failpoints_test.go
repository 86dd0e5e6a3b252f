package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every step of setup and cleanup, failed or killed: a machine root on a
// loopfile, memory and disk scratch, and a loopfile volume.
const failpointConfig = machineConfig + `
[classes.all]
mode = "machine"
backend = "sized"
name = "{name}-root"
selectable = true
[[classes.all.scratch]]
path = "/tmp"
size = "8MiB"
[[classes.all.scratch]]
path = "/var/tmp"
medium = "disk"
size = "16MiB"
[[classes.all.volumes]]
path = "/data"
backend = "sized"
name = "{name}-data"
size = "16MiB"
`

// minSteps is fewer than the class's setup steps: a sanity floor, so the
// loops below cannot pass by stopping early.
const minSteps = 12

// newFailpointCase runs its containers with the shim's failpoint build.
func newFailpointCase(t *testing.T) *tcase {
	tc := newBackendCase(t, failpointConfig)
	tc.runtime = fpRuntimeName
	return tc
}

// released waits until a container's storage is released, then checks that
// nothing is left and that its volumes attach again.
func (tc *tcase) released(id, name string) {
	tc.t.Helper()
	if err := tc.remove(id); err != nil {
		tc.t.Fatal(err)
	}
	journal := filepath.Join(tc.stateDir, "journal", tc.namespace, id)
	tc.eventually("the storage of "+id+" to be released", func() bool {
		_, err := os.Stat(journal)
		return os.IsNotExist(err)
	})
	tc.assertClean()
	tc.mustRun(id+"-again", image1, []string{class("all"), volName(name)}, "sh", "-c", "cat /data/mark /root/mark")
}

func TestFailpointsInCreate(t *testing.T) {
	for _, action := range []string{"error", "kill"} {
		t.Run(action, func(t *testing.T) {
			tc := newFailpointCase(t)
			name := "fc-" + action
			tc.mustRun(name+"-seed", image1, []string{class("all"), volName(name)}, "sh", "-c", "echo d > /data/mark; echo r > /root/mark")
			for n := 0; ; n++ {
				id := fmt.Sprintf("fc-%s-%d", action, n)
				ann := []string{class("all"), volName(name), fmt.Sprintf("persist.containerd.io/failpoint=create:%d:%s", n, action)}
				out, err := tc.run(id, image1, ann, "true")
				if err == nil {
					if n < minSteps {
						t.Fatalf("the failpoint after step %d never fired: setup has too few steps", n)
					}
					t.Logf("setup has %d steps; each failed by %s", n, action)
					break
				}
				if action == "error" {
					mustContain(t, out, fmt.Sprintf("failpoint after create step %d", n))
				}
				if action == "kill" && strings.Contains(out, "failed to create TTRPC connection") {
					// The shim died in the storage setup it begins before
					// Create, before containerd had connected to it:
					// containerd runs no `shim delete` for a shim it never
					// reached, and gc is what cleans up after it.
					t.Logf("%s: the shim died before containerd connected; gc cleans up", id)
					if out, err := tc.persistctl("gc"); err != nil {
						t.Fatalf("gc: %v: %s", err, out)
					}
				}
				tc.released(id, name)
			}
		})
	}
}

func TestFailpointsInDelete(t *testing.T) {
	for _, action := range []string{"error", "kill"} {
		t.Run(action, func(t *testing.T) {
			tc := newFailpointCase(t)
			name := "fd-" + action
			steps := tc.seedFailpoints(name)
			// A failed release is retried when the shim exits; a killed
			// shim's is done by containerd's cleanup. Either way, nothing
			// may be left.
			for n := range steps {
				id := fmt.Sprintf("fd-%s-%d", action, n)
				shim := tc.deleteWithFailpoint(id, name, n, action)
				// Proof that the failpoint fired: the release stopped
				// half-way, or the shim died in it.
				if action == "error" {
					want := fmt.Sprintf("failpoint after delete step %d", n)
					tc.eventually("the shim to log "+want, func() bool {
						log, _ := os.ReadFile(filepath.Join(daemon.dir, "containerd.log"))
						return containsLine(string(log), want, "id="+id)
					})
				} else {
					tc.eventually(fmt.Sprintf("the shim of %s to die at delete step %d", id, n), func() bool { return !alive(shim) })
				}
				tc.released(id, name)
			}
		})
	}
}

// seedFailpoints makes the volumes of the class "all" named after name,
// with a mark in each, and returns how many steps its setup has.
func (tc *tcase) seedFailpoints(name string) int {
	tc.t.Helper()
	tc.mustRun(name+"-seed", image1, []string{class("all"), volName(name)}, "sh", "-c", "echo d > /data/mark; echo r > /root/mark")
	steps := tc.setupSteps(name)
	if steps < minSteps {
		tc.t.Fatalf("setup has %d steps, want at least %d", steps, minSteps)
	}
	return steps
}

// deleteWithFailpoint starts container id of the class "all" on name's
// volumes, with a failpoint that fails (action "error") or kills the shim
// ("kill") after delete step n, then kills its task and deletes it. It
// returns the shim's PID.
func (tc *tcase) deleteWithFailpoint(id, name string, n int, action string) int {
	tc.t.Helper()
	ann := []string{class("all"), volName(name), fmt.Sprintf("persist.containerd.io/failpoint=delete:%d:%s", n, action)}
	if out, err := tc.start(id, image1, ann, "sleep", "600"); err != nil {
		tc.t.Fatalf("start: %v: %s", err, out)
	}
	shim := tc.shimPID(id)
	ctr(tc.namespace, "task", "kill", "-s", "SIGKILL", id)
	tc.eventually(id+" to exit", func() bool {
		out, _ := ctr(tc.namespace, "task", "ls")
		return !containsLine(out, id, "RUNNING")
	})
	ctr(tc.namespace, "task", "rm", id)
	return shim
}

// setupSteps counts the steps in the journal of a running container of the
// class "all".
func (tc *tcase) setupSteps(name string) int {
	tc.t.Helper()
	id := name + "-count"
	if out, err := tc.start(id, image1, []string{class("all"), volName(name)}, "sleep", "600"); err != nil {
		tc.t.Fatalf("start: %v: %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(tc.stateDir, "journal", tc.namespace, id))
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := tc.remove(id); err != nil {
		tc.t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
