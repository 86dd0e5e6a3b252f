package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// spaceConfig puts everything of a container on one small filesystem,
// mounted at the state dir: disk scratch images and, in the backend
// directly under it, loopfile volumes.
const spaceConfig = `default_class = "fill"

[backends.sized]
type = "loopfile"
path = "{dir}/state/images"

[classes.fill]
mode = "immutable"
selectable = true
[[classes.fill.scratch]]
path = "/tmp"
medium = "disk"
size = "40MiB"
[[classes.fill.volumes]]
path = "/data"
backend = "sized"
name = "{name}"
size = "56MiB"
`

// newSmallFSCase is a case whose state dir is an ext4 filesystem of size
// bytes, loop-mounted from an image outside the case's directory. It is
// unmounted after the case's own cleanup has removed the containers.
func newSmallFSCase(t *testing.T, size int64, body string) *tcase {
	image := filepath.Join(t.TempDir(), "host.img")
	var mnt string
	t.Cleanup(func() { // runs after tc.cleanup: cleanups run last first
		if mnt != "" {
			if err := unix.Unmount(mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				t.Errorf("unmount the small filesystem: %v", err)
			}
		}
	})
	tc := newCase(t, body)
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(size)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", image).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if err := os.Mkdir(tc.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (host.Linux{}).Mount(mount.Mount{Type: "ext4", Source: image, Options: []string{"loop"}}, tc.stateDir); err != nil {
		t.Fatal(err)
	}
	mnt = tc.stateDir
	tc.ownMounts = append(tc.ownMounts, mnt)
	return tc
}

// fillScript waits for the test's go-ahead, then fills the volume and the
// disk scratch with fsynced writes, and writes what dd said into the
// volume once there is room again.
const fillScript = `touch /data/ready
until [ -e /data/go ]; do sleep 0.1; done
v=$(dd if=/dev/zero of=/data/fill bs=1M conv=fsync 2>&1)
s=$(dd if=/dev/zero of=/tmp/fill bs=1M conv=fsync 2>&1)
rm -f /data/fill /tmp/fill
echo "$v" > /data/volume.out
echo "$s" > /data/scratch.out
echo written > /tmp/after && cat /tmp/after >> /data/scratch.out
sync
touch /data/done`

// A size is a promise: with the filesystem that holds the images full, each
// container that was created fills its volume and its disk scratch to
// ENOSPC, never EIO or a read-only remount; one that does not fit is
// refused at create with one line; every image checks clean afterwards.
func TestSpaceIsReserved(t *testing.T) {
	tc := newSmallFSCase(t, 256<<20, spaceConfig)
	volumeDir := func(id string) string { return filepath.Join(tc.stateDir, "mounts", tc.namespace, id, "data") }
	ids := []string{"space-1", "space-2"}
	for _, id := range ids {
		if out, err := tc.start(id, image1, []string{class("fill")}, "sh", "-c", fillScript); err != nil {
			t.Fatalf("start %s: %v: %s", id, err, out)
		}
		tc.eventually(id+" to start", func() bool {
			_, err := os.Stat(filepath.Join(volumeDir(id), "ready"))
			return err == nil
		})
	}
	// Two containers of 56+40 MiB hold 192 MiB of the 256: the third does
	// not fit, however little the first two have written yet.
	out, err := tc.run("space-3", image1, []string{class("fill")}, "true")
	if err == nil {
		t.Fatalf("a third container was created on a filesystem with no room for it: %s", out)
	}
	t.Logf("space-3: %s", out)
	if !containsLine(out, "backend sized", "56MiB", "ask for a smaller size") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("the refusal of space-3 is not one line saying the volume does not fit:\n%s", out)
	}
	if _, err := os.Lstat(filepath.Join(tc.stateDir, "images", tc.namespace, "space-3")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused create left its volume: %v", err)
	}

	// The host's writer fills what is left, and gets ENOSPC.
	if err := fillUp(filepath.Join(tc.stateDir, "fill")); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filling the host filesystem ended with %v, want ENOSPC", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(tc.stateDir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("host filesystem full: %d blocks free", st.Bfree)

	// Now both containers fill their space at once.
	for _, id := range ids {
		if err := os.WriteFile(filepath.Join(volumeDir(id), "go"), nil, 0o600); err != nil {
			t.Fatalf("a file in %s's volume with the host full: %v", id, err)
		}
	}
	for _, id := range ids {
		tc.eventually(id+" to fill its volume and scratch", func() bool {
			_, err := os.Stat(filepath.Join(volumeDir(id), "done"))
			return err == nil
		})
		for _, what := range []string{"volume", "scratch"} {
			b, err := os.ReadFile(filepath.Join(volumeDir(id), what+".out"))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s: %s", id, what, strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", " | "))
			if !strings.Contains(string(b), "No space left on device") ||
				strings.Contains(string(b), "I/O error") || strings.Contains(string(b), "Read-only") {
				t.Errorf("%s: filling the %s gave %q, want ENOSPC and nothing else", id, what, b)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(volumeDir(id), "scratch.out")); !strings.Contains(string(b), "written") {
			t.Errorf("%s: the scratch took no write after it was full: %q", id, b)
		}
	}

	// Disk scratch goes with its container: check it while it is mounted,
	// read-only, now that its container has synced and ended.
	scratch, _ := filepath.Glob(filepath.Join(tc.stateDir, "scratch", tc.namespace, "*", "*", "fs.img"))
	if len(scratch) != len(ids) {
		t.Errorf("scratch images %v, want one per container", scratch)
	}
	for _, img := range scratch {
		e2fsck(t, img)
	}
	if err := os.Remove(filepath.Join(tc.stateDir, "fill")); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := tc.remove(id); err != nil {
			t.Fatal(err)
		}
	}
	volumes, _ := filepath.Glob(filepath.Join(tc.stateDir, "images", tc.namespace, "*", "disk.img"))
	if len(volumes) != len(ids) {
		t.Errorf("volume images %v, want one per container", volumes)
	}
	for _, img := range volumes {
		e2fsck(t, img)
	}
	tc.assertClean()
	locks, _ := filepath.Glob(filepath.Join(tc.stateDir, "images", ".locks", tc.namespace, "*"))
	for _, l := range locks {
		if fi, err := os.Stat(l); err == nil && !fi.IsDir() {
			t.Errorf("left a volume lock: %s", l)
		}
	}
}

// fillUp writes path until a write fails, and returns that error.
func fillUp(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	block := make([]byte, 1<<20)
	for {
		if _, err := f.Write(block); err != nil {
			return err
		}
	}
}

func e2fsck(t *testing.T, image string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", image).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn %s: %v\n%s", image, err, out)
	}
}

// overcommitConfig has two loopfile backends on one small filesystem: one
// reserves, one overcommits.
const overcommitConfig = `default_class = "web"

[backends.sized]
type = "loopfile"
path = "{dir}/small/sized"

[backends.thin]
type = "loopfile"
path = "{dir}/small/thin"
overcommit = true

[classes.web]
mode = "immutable"
`

// overcommit = true is the explicit way to promise more than a backend
// holds: the create that does not fit is made, the volume says it is
// overcommitted, and doctor warns of the backend.
func TestOvercommitOptIn(t *testing.T) {
	tc := newCase(t, overcommitConfig)
	small := filepath.Join(tc.dir, "small")
	tc.mountTmpfs(small, 32<<20)
	for _, b := range []string{"sized", "thin"} {
		if err := os.Mkdir(filepath.Join(small, b), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ns := []string{"-n", tc.namespace}

	out, err := tc.persistctl(append(ns, "volumes", "create", "--backend", "sized", "--size", "64MiB", "big")...)
	if err == nil {
		t.Fatalf("a 64MiB volume was made on 32MiB without overcommit: %s", out)
	}
	mustContain(t, out, "backend sized: a volume of 64MiB does not fit in the", "ask for a smaller size")

	tc.mustPersistctl(append(ns, "volumes", "create", "--backend", "thin", "--size", "64MiB", "big")...)
	var st unix.Stat_t
	img := filepath.Join(small, "thin", tc.namespace, "big", "disk.img")
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 64<<20 || st.Blocks*512 >= 32<<20 {
		t.Errorf("the overcommitted image is %d bytes with %d allocated, want 64MiB and sparse", st.Size, st.Blocks*512)
	}

	var listed []map[string]any
	if err := json.Unmarshal([]byte(tc.mustPersistctl(append(ns, "volumes", "ls", "--json")...)), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0]["name"] != "big" || listed[0]["overcommit"] != true {
		t.Errorf("volumes ls --json = %v, want big with overcommit true", listed)
	}
	if table := tc.mustPersistctl(append(ns, "volumes", "ls")...); !containsLine(table, "big", "loopfile (overcommit)") {
		t.Errorf("volumes ls does not mark big as overcommitted:\n%s", table)
	}

	// doctor fails other checks here (no shim on its PATH); the warning is
	// a line of its own either way.
	out, _ = tc.persistctl("doctor", "--address", daemon.address)
	if !containsLine(out, "overcommit:", "warning: backend thin overcommits", filepath.Join(small, "thin")) {
		t.Errorf("doctor does not warn of backend thin:\n%s", out)
	}
	if containsLine(out, "backend sized") {
		t.Errorf("doctor warns of a backend that reserves:\n%s", out)
	}
	t.Logf("doctor:\n%s", out)

	tc.mustPersistctl(append(ns, "volumes", "rm", "--backend", "thin", "big")...)
	if _, err := os.Lstat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm left the image: %v", err)
	}
}
