package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

func requireMkfs(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		testenv.Skip(t, "needs mkfs.ext4", "install e2fsprogs")
	}
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
	for _, o := range []ImageOptions{{}, {Journaled: true}, {Sparse: true}, {Journaled: true, Sparse: true}} {
		t.Run(fmt.Sprintf("%+v", o), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "disk.img")
			const size = 64 << 20
			if err := (Linux{}).MakeImage(path, size, o); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != size || fi.Mode().Perm() != 0o600 {
				t.Errorf("image size %d mode %v, want %d 0600", fi.Size(), fi.Mode().Perm(), size)
			}
			if o.Sparse {
				// mkfs must not have written the whole file.
				checkSparseImage(t, path, size)
			} else {
				checkReservedImage(t, path, size)
			}
			magic, compat := superblock(t, path)
			if magic != 0xef53 {
				t.Fatalf("superblock magic %#x, want ext4's 0xef53", magic)
			}
			if got := compat&hasJournal != 0; got != o.Journaled {
				t.Errorf("has_journal = %v, want %v", got, o.Journaled)
			}
			if out, err := exec.Command("e2fsck", "-fn", path).CombinedOutput(); err != nil {
				t.Errorf("e2fsck %s: %v: %s", path, err, out)
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
	if err := (Linux{}).MakeImage(existing, 64<<20, ImageOptions{Journaled: true}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MakeImage over a file = %v, want ErrExist", err)
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "data" {
		t.Errorf("existing file after MakeImage = %q, %v; want it untouched", b, err)
	}

	// Sizes mkfs cannot format are refused before anything is made.
	for _, c := range []struct {
		size uint64
		o    ImageOptions
		want string
	}{
		{0, ImageOptions{}, "disk scratch of 0B is too small for an ext4 image: use at least 104KiB"},
		{100 << 10, ImageOptions{}, "use at least 104KiB"},
		{1 << 20, ImageOptions{Journaled: true}, "a loopfile volume of 1MiB is too small for an ext4 image: use at least 2MiB"},
		{16383 << 40, ImageOptions{Sparse: true}, "disk scratch of 16383TiB is too large: sizes go up to 8TiB"},
	} {
		img := filepath.Join(tmp, "small.img")
		err := (Linux{}).MakeImage(img, c.size, c.o)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("MakeImage of %d bytes = %v, want ErrInvalidArgument saying %q", c.size, err, c.want)
		}
		if _, err := os.Lstat(img); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused image was made: %v", err)
		}
	}
	// The smallest sizes are made.
	for _, o := range []ImageOptions{{}, {Journaled: true}} {
		img := filepath.Join(tmp, fmt.Sprintf("min-%v.img", o.Journaled))
		size := uint64(config.MinDiskSize)
		if o.Journaled {
			size = uint64(config.MinVolumeSize)
		}
		if err := (Linux{}).MakeImage(img, size, o); err != nil {
			t.Errorf("MakeImage of the smallest size %d: %v", size, err)
		}
		if _, compat := superblock(t, img); o.Journaled && compat&0x4 == 0 {
			t.Errorf("the smallest volume image has no journal")
		}
	}

	if err := (Linux{}).MakeImage(filepath.Join(tmp, "missing", "x.img"), 1<<20, ImageOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("MakeImage in a missing dir = %v, want ErrNotExist", err)
	}
}

// A reserved image that does not fit fails with one line that says so,
// and leaves nothing; a sparse one of the same size is made. tmpfs also
// has mkfs punch holes where it zeroes, which must not cost the
// reservation.
func TestMakeImageReservesOrFails(t *testing.T) {
	testenv.NeedRoot(t)
	requireMkfs(t)
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=48m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })

	for _, l := range []Linux{{}, {Templates: filepath.Join(dir, "templates")}} {
		name := fmt.Sprintf("templates=%q", l.Templates)
		big := filepath.Join(dir, "big.img")
		err := l.MakeImage(big, 64<<20, ImageOptions{})
		if !errdefs.IsResourceExhausted(err) || !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "reserve 64MiB for image "+big+": no space left on device") ||
			strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: a 64MiB reserved image on 48MiB = %v, want one line saying so, ErrResourceExhausted", name, err)
		}
		if _, err := os.Lstat(big); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: a failed image was left: %v", name, err)
		}
		fits := filepath.Join(dir, "fits.img")
		if err := l.MakeImage(fits, 32<<20, ImageOptions{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkReservedImage(t, fits, 32<<20)
		if err := os.Remove(fits); err != nil {
			t.Fatal(err)
		}
	}
	sparse := filepath.Join(dir, "sparse.img")
	if err := (Linux{}).MakeImage(sparse, 64<<20, ImageOptions{Sparse: true, Journaled: true}); err != nil {
		t.Fatalf("a sparse (overcommitted) image larger than its filesystem: %v", err)
	}
	checkSparseImage(t, sparse, 64<<20)

	// With the filesystem full, a sparse image fails in mkfs: still one line.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = fill.Write(make([]byte, 1<<20))
	}
	fill.Close()
	full := filepath.Join(dir, "full.img")
	err = (Linux{}).MakeImage(full, 16<<20, ImageOptions{Sparse: true})
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(err.Error(), "mkfs.ext4 "+full) || strings.Contains(err.Error(), "\n") {
		t.Errorf("a sparse image on a full filesystem = %q, want one line from mkfs.ext4, wrapping its exit", err)
	}
	if _, err := os.Lstat(full); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed image was left: %v", err)
	}
}

// checkReservedImage fails unless every block of path is allocated.
func checkReservedImage(t *testing.T, path string, size int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Mode&0o777 != 0o600 {
		t.Errorf("%s: size %d mode %o, want %d 0600", path, st.Size, st.Mode&0o777, size)
	}
	if used := st.Blocks * 512; used < size {
		t.Errorf("%s has %d of its %d bytes allocated: not reserved", path, used, size)
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
	var devs []string
	for _, l := range Loops() {
		if l.Backing == path && !l.Deleted {
			devs = append(devs, l.Dev())
		}
	}
	return devs
}

func TestMountUnmount(t *testing.T) {
	testenv.NeedRoot(t)
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
	var me *MountError
	if !errors.As(err, &me) || me.Op != "mount" || me.Type != "nosuchfs" || me.Source != "none" || me.Target != target {
		t.Errorf("Mount of an unknown type = %#v, want a *MountError of the mount", err)
	}
	if !errors.Is(err, unix.ENODEV) {
		t.Errorf("Mount of an unknown type = %v, want its cause ENODEV", err)
	}
	if err == nil || !strings.Contains(err.Error(), "nosuchfs") || !strings.Contains(err.Error(), target) {
		t.Errorf("Mount of an unknown type = %v, want an error naming the type and target", err)
	}

	// A busy mount is not success: the caller sees EBUSY and the target.
	if err := h.Mount(m, target); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(target, "open"))
	if err != nil {
		t.Fatal(err)
	}
	err = h.Unmount(target)
	f.Close()
	if !errors.Is(err, unix.EBUSY) || !errors.As(err, &me) || me.Op != "unmount" || me.Target != target {
		t.Errorf("Unmount with a file open = %v, want a *MountError of the unmount with cause EBUSY", err)
	}
	if err := h.Unmount(target); err != nil {
		t.Fatal(err)
	}
}

func TestMountLoop(t *testing.T) {
	testenv.NeedRoot(t)
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
	if err := h.MakeImage(image, 16<<20, ImageOptions{}); err != nil {
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
	} else if l, ok := LoopOf(devs[0]); !ok || l.Backing != image || l.Dev() != devs[0] {
		t.Errorf("LoopOf(%s) = %+v, %v; want the device over %s", devs[0], l, ok, image)
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.Unmount(target); err != nil {
		t.Fatal(err)
	}
	// The loop device is autoclear: it goes with the last unmount. Since
	// Linux 5.19 the kernel detaches it from a work queue, a moment after
	// the unmount returns, so this waits (up to 10 s) rather than looks once.
	devs := loopBackedBy(t, image)
	for end := time.Now().Add(10 * time.Second); len(devs) != 0 && time.Now().Before(end); devs = loopBackedBy(t, image) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(devs) != 0 {
		t.Errorf("loop devices of %s left after unmount: %v", image, devs)
	}
}
