package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritableConfigOrStateDirRefused(t *testing.T) {
	tc := newMachineCase(t)
	if err := os.Chmod(tc.configPath, 0o666); err != nil {
		t.Fatal(err)
	}
	out, err := tc.run("perm1", image1, nil, "true")
	if err == nil {
		t.Fatal("a config writable by others was used")
	}
	mustContain(t, out, "persist.toml is writable by group or others (mode 0666)", "chmod go-w")
	if err := os.Chmod(tc.configPath, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(tc.stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tc.stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	out, err = tc.run("perm2", image1, nil, "true")
	if err == nil {
		t.Fatal("a state dir writable by others was used")
	}
	mustContain(t, out, "state dir "+tc.stateDir, "writable by group or others")
}

func TestStorageIsPrivate(t *testing.T) {
	tc := newMachineCase(t)
	if out, err := tc.start("priv", image1, []string{class("db"), volName("priv")}, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	tc.mustRun("priv-vm", image1, []string{class("vmloop"), volName("privvm")}, "true")
	private := []string{
		tc.stateDir,
		filepath.Join(tc.stateDir, "journal", tc.namespace, "priv"),
		filepath.Join(tc.dir, "images", ".locks", tc.namespace, "priv-data"),
		filepath.Join(tc.stateDir, "mounts", tc.namespace),
		filepath.Join(tc.dir, "images", tc.namespace, "priv-data"),
		filepath.Join(tc.dir, "images", tc.namespace, "priv-data", "volume.json"),
		filepath.Join(tc.dir, "images", tc.namespace, "priv-data", "disk.img"),
		filepath.Join(tc.dir, "images", tc.namespace, "privvm-root", "disk.img"),
	}
	for _, p := range private {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %04o: others may read it", p, fi.Mode().Perm())
		}
	}
}

// A machine container plants a symlink where a later class has scratch: the
// scratch overlay's lower would follow it on the host, so the create is
// refused.
func TestScratchOverPlantedSymlinkRefused(t *testing.T) {
	tc := newBackendCase(t, machineConfig+`
[classes.vmtmp]
mode = "machine"
backend = "local"
selectable = true
[[classes.vmtmp.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.vmtmp.scratch]]
path = "/var/cache/app"
size = "1MiB"
`)
	for i, plant := range []string{"rm -rf /tmp && ln -s /etc /tmp", "rm -rf /var && ln -s / /var"} {
		name := fmt.Sprintf("planted%d", i)
		tc.mustRun(name+"-a", image1, []string{class("vm"), volName(name)}, "sh", "-c", plant)
		out, err := tc.run(name+"-b", image1, []string{class("vmtmp"), volName(name)}, "cat", "/tmp/passwd", "/var/cache/app/passwd")
		if err == nil {
			t.Fatalf("scratch was laid over a planted symlink: %s", out)
		}
		mustContain(t, out, "is a symlink in the container's root, or under one")
	}
}

// Containers plant links, fifos, device nodes, odd names and a deep tree in
// their volumes and scratch. Host-side code (cleanup, du, export, gc, rm)
// never follows them out, and removing the volumes removes only them.
func TestPlantedEntriesStayInside(t *testing.T) {
	tc := newMachineCase(t)
	canary := filepath.Join(tc.dir, "canary")
	if err := os.WriteFile(canary, []byte("host canary 7f3a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := func(dir string) string {
		return fmt.Sprintf(`cd %[1]s && ln -s / rootlink && ln -s %[2]s canarylink && ln -s ../../../../../../.. up &&
echo x > file && ln file hardlink && mkfifo fifo && mknod null c 1 3 && touch "$(printf 'new\nline')" &&
d=deep; for i in $(seq 300); do d=$d/d; done; mkdir -p $d && echo bottom > $d/f && sync`, dir, canary)
	}
	tc.mustRun("plant-vm", image1, []string{class("vm"), volName("pvm")}, "sh", "-c", plant("/root"))
	tc.mustRun("plant-db", image1, []string{class("db"), volName("pdb")}, "sh", "-c", plant("/var/lib/db"))
	for _, v := range []string{"pvm", "pdb-data"} {
		if out, err := tc.persistctl("-n", tc.namespace, "volumes", "du", v); err != nil {
			t.Errorf("du %s: %v: %s", v, err, out)
		}
		tar := filepath.Join(tc.dir, v+".tar")
		if out, err := tc.persistctl("-n", tc.namespace, "volumes", "export", v, tar); err != nil {
			t.Errorf("export %s: %v: %s", v, err, out)
		}
		b, err := os.ReadFile(tar)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "host canary 7f3a") {
			t.Errorf("the export of %s holds the host's canary: a link was followed", v)
		}
		if !strings.Contains(string(b), "bottom") {
			t.Errorf("the export of %s lacks the deep tree's file", v)
		}
	}
	if out, err := tc.persistctl("gc"); err != nil {
		t.Fatalf("gc: %v: %s", err, out)
	}
	if out, err := tc.persistctl("-n", tc.namespace, "volumes", "rm", "pvm", "pdb-data"); err != nil {
		t.Fatalf("rm: %v: %s", err, out)
	}
	if b, err := os.ReadFile(canary); err != nil || string(b) != "host canary 7f3a\n" {
		t.Fatalf("the host's canary changed: %q, %v", b, err)
	}
	for _, dir := range []string{filepath.Join(tc.dir, "volumes", tc.namespace, "pvm"), filepath.Join(tc.dir, "images", tc.namespace, "pdb-data")} {
		if _, err := os.Lstat(dir); !os.IsNotExist(err) {
			t.Errorf("rm left %s: %v", dir, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatalf("the host lost /etc/passwd: %v", err)
	}
}
