package host

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

func TestMakeImageFromTemplate(t *testing.T) {
	requireMkfs(t)
	dir := t.TempDir()
	l := Linux{Templates: filepath.Join(dir, "templates")}
	const size = 64 << 20
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	if err := l.MakeImage(a, size, ImageOptions{}); err != nil {
		t.Fatal(err)
	}
	tmpls, _ := filepath.Glob(filepath.Join(l.Templates, "*"))
	if len(tmpls) != 1 {
		t.Fatalf("templates dir holds %v, want one template", tmpls)
	}
	before, err := os.Stat(tmpls[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := l.MakeImage(b, size, ImageOptions{Sparse: true}); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(tmpls[0]); err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the second image did not reuse the template")
	}
	want, err := os.ReadFile(tmpls[0])
	if err != nil {
		t.Fatal(err)
	}
	// The template itself is sparse: it is only ever read.
	checkSparseImage(t, tmpls[0], size)
	for _, p := range []string{a, b} {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the template", p)
		}
		if p == a {
			checkReservedImage(t, p, size)
		} else {
			checkSparseImage(t, p, size)
		}
		if magic, compat := superblock(t, p); magic != 0xef53 || compat&0x4 != 0 {
			t.Errorf("%s: magic %#x compat %#x, want ext4 without a journal", p, magic, compat)
		}
		if out, err := exec.Command("e2fsck", "-fn", p).CombinedOutput(); err != nil {
			t.Errorf("e2fsck %s: %v: %s", p, err, out)
		}
	}
	// A journaled image (a volume) is never a copy.
	c := filepath.Join(dir, "c.img")
	if err := l.MakeImage(c, size, ImageOptions{Journaled: true}); err != nil {
		t.Fatal(err)
	}
	if _, compat := superblock(t, c); compat&0x4 == 0 {
		t.Errorf("journaled image has no journal")
	}
	if got, _ := filepath.Glob(filepath.Join(l.Templates, "*")); len(got) != 1 {
		t.Errorf("templates dir holds %v after a journaled image, want the one template", got)
	}
	// An existing file is never overwritten.
	if err := l.MakeImage(a, size, ImageOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("MakeImage over an existing file = %v, want ErrExist", err)
	}
	if _, err := os.Stat(a); err != nil {
		t.Errorf("a failed MakeImage removed the existing file: %v", err)
	}
}

func TestMakeImageFromTemplateMounts(t *testing.T) {
	testenv.NeedRoot(t)
	requireMkfs(t)
	dir := t.TempDir()
	l := Linux{Templates: filepath.Join(dir, "templates")}
	img, mnt := filepath.Join(dir, "a.img"), filepath.Join(dir, "mnt")
	if err := l.MakeImage(img, 64<<20, ImageOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := l.Mount(mount.Mount{Type: "ext4", Source: img, Options: []string{"loop"}}, mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Unmount(mnt) })
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
}

func TestCopyImage(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	const size = 16 << 20
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 5 << 20, size - 4096} {
		if _, err := f.WriteAt(bytes.Repeat([]byte{byte(off>>20) + 1}, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	want, _ := os.ReadFile(src)
	for _, reserved := range []bool{false, true} {
		os.Remove(dst)
		if err := copyImage(src, dst, reserved); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("copy (reserved %v) differs from its source", reserved)
		}
		if reserved {
			checkReservedImage(t, dst, size)
		} else {
			checkSparseImage(t, dst, size)
		}
	}
}

func TestWithTemplates(t *testing.T) {
	if m, ok := WithTemplates(Linux{}, "/x").(Linux); !ok || m.Templates != "/x" {
		t.Errorf("WithTemplates(Linux{}) = %#v, want a Linux with Templates /x", m)
	}
	var other Mounter = fakeMounter{}
	if m := WithTemplates(other, "/x"); m != other {
		t.Errorf("WithTemplates changed a Mounter that is not a Linux: %#v", m)
	}
}

type fakeMounter struct{ Mounter }

// checkSparseImage fails unless path is size bytes, mode 0600, and mostly
// holes.
func checkSparseImage(t *testing.T, path string, size int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Mode&0o777 != 0o600 {
		t.Errorf("%s: size %d mode %o, want %d 0600", path, st.Size, st.Mode&0o777, size)
	}
	if used := st.Blocks * 512; used > size/8 {
		t.Errorf("%s uses %d bytes of %d: not sparse", path, used, size)
	}
}
