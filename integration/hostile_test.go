package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
)

// TestLockHoldsAcrossConfigs: two configs that differ only in their state
// dir share the backends. The lock lives with the volume, so the second
// config can neither attach a volume the first holds nor remove it.
func TestLockHoldsAcrossConfigs(t *testing.T) {
	tc := newMachineCase(t)
	b, err := os.ReadFile(tc.configPath)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tc.dir, "other.toml")
	otherState := filepath.Join(tc.dir, "state2")
	if err := os.WriteFile(other, []byte(strings.Replace(string(b), tc.stateDir, otherState, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cls := range []string{"vm", "vmloop"} {
		holder := "held-" + cls
		if out, err := tc.start(holder, image1, []string{class(cls), volName("shared-" + cls)}, "sleep", "600"); err != nil {
			t.Fatalf("start: %v: %s", err, out)
		}
		first := tc.configPath
		tc.configPath = other
		out, err := tc.run("second-"+cls, image1, []string{class(cls), volName("shared-" + cls)}, "true")
		tc.configPath = first
		if err == nil {
			t.Fatalf("%s: a second config attached the volume that %s holds", cls, holder)
		}
		mustContain(t, out, "held by container "+holder)
		vol := "shared-" + cls
		if cls == "vmloop" {
			vol += "-root"
		}
		rm, err := exec.Command(filepath.Join(daemon.bin, "persistctl"), "--config", other, "-n", tc.namespace, "volumes", "rm", vol).CombinedOutput()
		if err == nil {
			t.Fatalf("%s: persistctl with another config removed a held volume: %s", cls, rm)
		}
		mustContain(t, string(rm), "held by container "+holder)
		if out := tc.ctrExec(holder, "sh", "-c", "echo alive > /root/alive && cat /root/alive"); strings.TrimSpace(out) != "alive" {
			t.Errorf("%s: the holder's root no longer works: %q", cls, out)
		}
	}
	for _, e := range leftoversIn(otherState, tc.namespace) {
		t.Errorf("left in the second state dir: %s", e)
	}
}

// TestBackendWritableByOthersRefused: whoever may write a backend could
// plant a volume whose content is a link to a host directory. Such a
// backend is refused, by the shim and by persistctl.
func TestBackendWritableByOthersRefused(t *testing.T) {
	tc := newMachineCase(t)
	secret := filepath.Join(tc.dir, "root-only")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	backend := filepath.Join(tc.dir, "volumes")
	if err := os.Chmod(backend, 0o1777); err != nil {
		t.Fatal(err)
	}
	// What user nobody could plant in a mode 1777 backend.
	planted := filepath.Join(backend, tc.namespace, "x")
	if err := os.MkdirAll(planted, 0o755); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"name": "x", "namespace": tc.namespace, "backend": "local", "type": "dir"})
	if err := os.WriteFile(filepath.Join(planted, "volume.json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(planted, "fs")); err != nil {
		t.Fatal(err)
	}
	out, err := tc.run("x", image1, []string{class("vm"), volName("x")}, "cat", "/secret")
	if err == nil || strings.Contains(out, "host secret") {
		t.Fatalf("a container ran from a backend others may write: %v: %s", err, out)
	}
	mustContain(t, out, "backend local", "writable by group or others", "chmod go-w")
	out2, err := tc.persistctl("-n", tc.namespace, "volumes", "ls")
	if err == nil {
		t.Errorf("volumes ls read a backend others may write: %s", out2)
	}
	mustContain(t, out2, "writable by group or others")
}

// TestPlantedLinksNeverLeadHostTools: links planted where a volume's
// hidden directory or image would be never lead gc or an attach to a host
// mount or a foreign image.
func TestPlantedLinksNeverLeadHostTools(t *testing.T) {
	tc := newMachineCase(t)
	victim := filepath.Join(tc.dir, "victim")
	tc.mountTmpfs(victim, 1<<20)
	if err := os.MkdirAll(filepath.Join(tc.dir, "volumes", tc.namespace), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(tc.dir, "volumes", tc.namespace, ".creating-x-0123456789ab")); err != nil {
		t.Fatal(err)
	}
	if out, err := tc.persistctl("gc"); err != nil {
		t.Fatalf("gc: %v: %s", err, out)
	}
	if ok, err := mountinfo.Mounted(victim); err != nil || !ok {
		t.Fatalf("gc unmounted %s through a planted link: mounted %v, %v", victim, ok, err)
	}

	// A loopfile volume whose image is a link to another image.
	foreign := filepath.Join(tc.dir, "foreign.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", foreign, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v: %s", err, out)
	}
	planted := filepath.Join(tc.dir, "images", tc.namespace, "y-root")
	if err := os.MkdirAll(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"name": "y-root", "namespace": tc.namespace, "backend": "sized", "type": "loopfile", "size": 4 << 20})
	if err := os.WriteFile(filepath.Join(planted, "volume.json"), meta, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(foreign, filepath.Join(planted, "disk.img")); err != nil {
		t.Fatal(err)
	}
	out, err := tc.run("y", image1, []string{class("vmloop"), volName("y")}, "true")
	if err == nil {
		t.Fatalf("a volume whose image is a link was attached: %s", out)
	}
	mustContain(t, out, "disk.img is not a regular file")
}

// ctrExec runs a command in a running container and returns its output.
func (tc *tcase) ctrExec(id string, cmd ...string) string {
	tc.t.Helper()
	out, err := ctr(tc.namespace, append([]string{"task", "exec", "--exec-id", "x" + id, id}, cmd...)...)
	if err != nil {
		tc.t.Fatalf("exec in %s: %v: %s", id, err, out)
	}
	return out
}

// TestHugeAnnotationShortError: a 100 KB name or class annotation is
// refused with one short line, and leaves nothing behind.
func TestHugeAnnotationShortError(t *testing.T) {
	tc := newMachineCase(t)
	huge := strings.Repeat("x", 100000)
	for i, a := range [][]string{{class("vm"), volName(huge)}, {class(huge)}} {
		out, err := tc.run("huge"+string(rune('a'+i)), image1, a, "true")
		if err == nil {
			t.Fatalf("a 100 KB annotation was taken: %s", out)
		}
		if len(out) > 2000 || !strings.Contains(out, "100000 bytes") {
			t.Errorf("error of %d bytes, want one short line that says the value's size: %.300s", len(out), out)
		}
	}
}
