package integration

import (
	"os"
	"path/filepath"
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
		filepath.Join(tc.stateDir, "locks", tc.namespace, "priv-data"),
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
