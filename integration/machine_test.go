package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const machineConfig = `default_class = "vm"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[backends.sized]
type = "loopfile"
path = "{dir}/images"
default_size = "64MiB"

[classes.vm]
mode = "machine"
backend = "local"
selectable = true

[classes.vmloop]
mode = "machine"
backend = "sized"
name = "{name}-root"
selectable = true

[classes.strict]
mode = "machine"
backend = "local"
on_image_change = "refuse"
selectable = true

[classes.db]
mode = "immutable"
selectable = true
[[classes.db.volumes]]
path = "/var/lib/db"
backend = "sized"
name = "{name}-data"
size = "24MiB"
`

// newMachineCase is a case with the machine config and its backend dirs.
func newMachineCase(t *testing.T) *tcase { return newBackendCase(t, machineConfig) }

// newBackendCase is a case whose config has the backends of machineConfig:
// "volumes" (dir) and "images" (loopfile), made here.
func newBackendCase(t *testing.T, config string) *tcase {
	tc := newCase(t, config)
	for _, backend := range []string{"volumes", "images"} {
		if err := os.Mkdir(filepath.Join(tc.dir, backend), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

func (tc *tcase) volumeMeta(backend, name string) map[string]any {
	tc.t.Helper()
	b, err := os.ReadFile(filepath.Join(tc.dir, backend, tc.namespace, name, "volume.json"))
	if err != nil {
		tc.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tc.t.Fatal(err)
	}
	return m
}

func TestMachineStateSurvivesRecreate(t *testing.T) {
	for _, cls := range []string{"vm", "vmloop"} {
		t.Run(cls, func(t *testing.T) {
			tc := newMachineCase(t)
			ann := []string{class(cls), volName("node1")}
			tc.mustRun("m1", image1, ann, "sh", "-c", "echo kept > /root/state && mkdir -p /var/lib/x && echo deep > /var/lib/x/y && rm /etc/image-version && sync")
			out := tc.mustRun("m2", image1, ann, "sh", "-c", "cat /root/state /var/lib/x/y; ls /etc/image-version; echo writable > /w && cat /w")
			mustContain(t, out, "kept", "deep", "No such file", "writable")
		})
	}
}

func TestMachineImageChange(t *testing.T) {
	tc := newMachineCase(t)
	ann := []string{class("vm"), volName("app")}
	tc.mustRun("v1", image1, ann, "sh", "-c", "echo data > /root/state")
	out := tc.mustRun("v2", image2, ann, "sh", "-c", "cat /root/state /etc/image-version")
	mustContain(t, out, "data", "2")
	m := tc.volumeMeta("volumes", "app")
	img, _ := m["image"].(map[string]any)
	if img["name"] != image2 {
		t.Errorf("volume records image %v, want %s", img["name"], image2)
	}
	changes, _ := m["image_changes"].([]any)
	if len(changes) != 1 {
		t.Errorf("want one image change recorded, got %v", m["image_changes"])
	}
}

func TestMachineImageChangeRefused(t *testing.T) {
	tc := newMachineCase(t)
	ann := []string{class("strict"), volName("pinned")}
	tc.mustRun("r1", image1, ann, "sh", "-c", "echo data > /root/state")
	out, err := tc.run("r2", image2, ann, "true")
	if err == nil {
		t.Fatal("a new image was accepted under on_image_change = refuse")
	}
	mustContain(t, out, image1, image2, `on_image_change = "refuse"`)
	out = tc.mustRun("r3", image1, ann, "cat", "/root/state")
	mustContain(t, out, "data")
}

func TestVolumeHeldByAnotherContainer(t *testing.T) {
	tc := newMachineCase(t)
	ann := []string{class("vm"), volName("single")}
	if out, err := tc.start("holder", image1, ann, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	out, err := tc.run("second", image1, ann, "true")
	if err == nil {
		t.Fatal("a second container attached a held volume")
	}
	mustContain(t, out, "volume single", "held by container holder", "namespace "+tc.namespace)
	if err := tc.remove("holder"); err != nil {
		t.Fatal(err)
	}
	tc.mustRun("third", image1, ann, "true")
}

func TestConcurrentCreatesOneWinner(t *testing.T) {
	tc := newMachineCase(t)
	ann := []string{class("vmloop"), volName("race")}
	const n = 8
	for round := range rounds(2) {
		var wg sync.WaitGroup
		outs := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			args := tc.runArgs(fmt.Sprintf("race%d-%d", round, i), image1, ann, []string{"sleep", "600"}, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = ctr(tc.namespace, args...)
			}()
		}
		wg.Wait()
		won := 0
		for i := range n {
			if errs[i] == nil {
				won++
				continue
			}
			mustContain(t, outs[i], "volume race-root", "held by")
		}
		if won != 1 {
			t.Fatalf("round %d: %d of %d creates won, want exactly one", round, won, n)
		}
		for i := range n {
			if err := tc.remove(fmt.Sprintf("race%d-%d", round, i)); err != nil {
				t.Fatal(err)
			}
		}
		tc.assertClean()
	}
}

func TestLoopfileVolumeQuota(t *testing.T) {
	tc := newMachineCase(t)
	out := tc.mustRun("q", image1, []string{class("db"), volName("pg")}, "sh", "-c",
		"dd if=/dev/zero of=/var/lib/db/fill bs=1M count=64; echo exit=$?; df -k /var/lib/db | tail -1")
	mustContain(t, out, "No space left on device", "exit=1")
	// Data written to the volume is there for the next container.
	out = tc.mustRun("q2", image1, []string{class("db"), volName("pg")}, "sh", "-c", "ls -l /var/lib/db/fill; touch /etc/x; true")
	mustContain(t, out, "/var/lib/db/fill", "Read-only file system")
}

func TestNamespacesSeparateVolumes(t *testing.T) {
	tc := newMachineCase(t)
	ann := []string{class("vm"), volName("same")}
	tc.mustRun("n1", image1, ann, "sh", "-c", "echo first > /root/ns")
	other := *tc
	other.namespace = namespace + "-2"
	other.containers = map[string]bool{}
	t.Cleanup(other.cleanup)
	out := other.mustRun("n1", image1, ann, "sh", "-c", "cat /root/ns; echo second > /root/ns")
	if strings.Contains(out, "first") {
		t.Errorf("namespace %s sees a volume of namespace %s:\n%s", other.namespace, tc.namespace, out)
	}
	out = tc.mustRun("n2", image1, ann, "cat", "/root/ns")
	mustContain(t, out, "first")
	for _, ns := range []string{tc.namespace, other.namespace} {
		if _, err := os.Stat(filepath.Join(tc.dir, "volumes", ns, "same", "volume.json")); err != nil {
			t.Errorf("namespace %s has no volume same: %v", ns, err)
		}
	}
}

func TestHostileNamesRefused(t *testing.T) {
	tc := newMachineCase(t)
	// Capitals (nerdctl names) and long names (Kubernetes) are valid.
	for i, name := range []string{"../x", "a/b", "..", "a~b", "@t", strings.Repeat("a", 513), ".hidden", "a b"} {
		out, err := tc.run(fmt.Sprintf("h%d", i), image1, []string{class("vm"), volName(name)}, "true")
		if err == nil {
			t.Errorf("name %q was accepted", name)
			continue
		}
		mustContain(t, out, "is not a valid volume name", `volume name template "{name}"`)
	}
	entries, _ := os.ReadDir(filepath.Join(tc.dir, "volumes"))
	for _, e := range entries {
		if e.Name() == ".locks" { // empty: the harness checks
			continue
		}
		sub, _ := os.ReadDir(filepath.Join(tc.dir, "volumes", e.Name()))
		for _, s := range sub {
			t.Errorf("a refused name left a volume: %s/%s", e.Name(), s.Name())
		}
	}
}

// One shim serving several containers (as for a Kubernetes pod): a second
// container's failed attach must not release the first one's hold.
func TestGroupedShimKeepsHolds(t *testing.T) {
	tc := newMachineCase(t)
	group := "io.containerd.runc.v2.group=pod1"
	ann := []string{class("vm"), volName("podvol"), group}
	if out, err := tc.start("pod-a", image1, ann, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	out, err := tc.run("pod-b", image1, ann, "true")
	if err == nil {
		t.Fatal("a second container of the pod attached a held volume")
	}
	mustContain(t, out, "held by container pod-a")
	if err := tc.remove("pod-b"); err != nil {
		t.Fatal(err)
	}
	out, err = tc.run("outsider", image1, []string{class("vm"), volName("podvol")}, "true")
	if err == nil {
		t.Fatal("the hold of pod-a was lost when pod-b failed")
	}
	mustContain(t, out, "held by container pod-a")
	if err := tc.remove("pod-a"); err != nil {
		t.Fatal(err)
	}
	tc.mustRun("outsider2", image1, []string{class("vm"), volName("podvol")}, "true")
}
