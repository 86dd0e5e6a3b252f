package host

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// requireRoot skips a test that needs root, unless CI is set: CI must run
// every test, so there a skip is a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI is set: run the tests as root")
	}
	t.Skip("needs root")
}

func requireMkfs(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mkfs.ext4 not found, and CI is set: install e2fsprogs")
	}
	t.Skip("mkfs.ext4 not found")
}

// superblock reads the ext4 superblock's magic and compat features.
func superblock(t *testing.T, path string) (magic uint16, compat uint32) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(sb[0x38:]), binary.LittleEndian.Uint32(sb[0x5c:])
}

func TestMakeImage(t *testing.T) {
	requireMkfs(t)
	const hasJournal = 0x4 // EXT3_FEATURE_COMPAT_HAS_JOURNAL
	for _, journaled := range []bool{false, true} {
		name := "no journal"
		if journaled {
			name = "journal"
		}
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk.img")
			const size = 64 << 20
			if err := (Linux{}).MakeImage(path, size, journaled); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != size || fi.Mode().Perm() != 0o600 {
				t.Errorf("image size %d mode %v, want %d 0600", fi.Size(), fi.Mode().Perm(), size)
			}
			// Sparse: mkfs must not have written the whole file.
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 >= size/2 {
				t.Errorf("image uses %d bytes of %d: not sparse", st.Blocks*512, size)
			}
			magic, compat := superblock(t, path)
			if magic != 0xef53 {
				t.Fatalf("superblock magic %#x, want ext4's 0xef53", magic)
			}
			if got := compat&hasJournal != 0; got != journaled {
				t.Errorf("has_journal = %v, want %v", got, journaled)
			}
		})
	}
}

func TestMakeImageFails(t *testing.T) {
	requireMkfs(t)
	tmp := t.TempDir()

	existing := filepath.Join(tmp, "existing")
	if err := os.WriteFile(existing, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (Linux{}).MakeImage(existing, 64<<20, true); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MakeImage over a file = %v, want ErrExist", err)
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "data" {
		t.Errorf("existing file after MakeImage = %q, %v; want it untouched", b, err)
	}

	// mkfs refuses an empty device; the half-made image must go.
	empty := filepath.Join(tmp, "empty.img")
	err := (Linux{}).MakeImage(empty, 0, false)
	if err == nil || !strings.Contains(err.Error(), "mkfs.ext4 "+empty) {
		t.Errorf("MakeImage of size 0 = %v, want mkfs.ext4's error naming the image", err)
	}
	if _, err := os.Lstat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed image left behind: %v", err)
	}

	if err := (Linux{}).MakeImage(filepath.Join(tmp, "missing", "x.img"), 1<<20, false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MakeImage in a missing dir = %v, want ErrNotExist", err)
	}
}

// mounted reports whether target is a mountpoint in this mount namespace.
func mounted(t *testing.T, target string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == target {
			return true
		}
	}
	return false
}

// loopBackedBy lists the loop devices whose backing file is path.
func loopBackedBy(t *testing.T, path string) []string {
	t.Helper()
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var devs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.TrimSpace(string(b)) == path {
			devs = append(devs, f)
		}
	}
	return devs
}

func TestMountUnmount(t *testing.T) {
	requireRoot(t)
	tmp := t.TempDir()
	target := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	h := Linux{}

	m := mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1048576", "nodev", "nosuid"}}
	if err := h.Mount(m, target); err != nil {
		t.Fatal(err)
	}
	if !mounted(t, target) {
		t.Fatalf("%s not in mountinfo after Mount", target)
	}
	if err := h.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if mounted(t, target) {
		t.Fatalf("%s still mounted after Unmount", target)
	}
	// Cleanup is replayed: not mounted and no such path are success.
	if err := h.Unmount(target); err != nil {
		t.Errorf("Unmount of a directory that is not mounted = %v", err)
	}
	if err := h.Unmount(filepath.Join(tmp, "missing")); err != nil {
		t.Errorf("Unmount of a missing path = %v", err)
	}

	err := h.Mount(mount.Mount{Type: "nosuchfs", Source: "none"}, target)
	if err == nil || !strings.Contains(err.Error(), "nosuchfs") || !strings.Contains(err.Error(), target) {
		t.Errorf("Mount of an unknown type = %v, want an error naming the type and target", err)
	}
}

func TestMountLoop(t *testing.T) {
	requireRoot(t)
	requireMkfs(t)
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no loop devices, and CI is set: %v", err)
		}
		t.Skipf("no loop devices: %v", err)
	}
	tmp := t.TempDir()
	image := filepath.Join(tmp, "disk.img")
	target := filepath.Join(tmp, "mnt")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	h := Linux{}
	if err := h.MakeImage(image, 16<<20, false); err != nil {
		t.Fatal(err)
	}
	if err := h.Mount(mount.Mount{Type: "ext4", Source: image, Options: []string{"loop", "nodev", "nosuid"}}, target); err != nil {
		t.Fatal(err)
	}
	if !mounted(t, target) {
		t.Fatalf("%s not mounted", target)
	}
	if devs := loopBackedBy(t, image); len(devs) != 1 {
		t.Errorf("loop devices of %s = %v, want one", image, devs)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Unmount(target); err != nil {
		t.Fatal(err)
	}
	// The loop device is autoclear: it goes with the last unmount.
	if devs := loopBackedBy(t, image); len(devs) != 0 {
		t.Errorf("loop devices of %s left after unmount: %v", image, devs)
	}
}
