package fstree

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree/fstreetest"
)

// deep is the depth of the trees that check the bounds: far past the
// RLIMIT_NOFILE of a usual host (a container builds 21,000 levels in 13 s).
const deep = 100_000

// needRoot skips a test that needs root, and fails it when CI is set.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI is set: run the tests as root")
	}
	t.Skip("needs root")
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// deepDir is an empty directory on a fresh tmpfs, unmounted when the test
// ends: building and removing 100,000 levels takes seconds there, and
// minutes on a disk filesystem mounted with discard.
func deepDir(t *testing.T) string {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	mount(t, "tmpfs", dir, "tmpfs", 0)
	return dir
}

func TestWalkDeepTree(t *testing.T) {
	root := deepDir(t)
	fstreetest.Chain(t, root, "d", deep, "f", "bottom\n")
	fstreetest.LimitFDs(t, MaxOpen+8)
	var dirs, files int
	var bottom string
	err := Walk(root, func(e *Entry) error {
		switch e.Stat.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			dirs++
		case unix.S_IFREG:
			files++
			bottom = e.Path()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %.300v", err)
	}
	if dirs != deep+1 || files != 1 {
		t.Errorf("Walk met %d directories and %d files, want %d and 1", dirs, files, deep+1)
	}
	if want := strings.Repeat("d/", deep) + "f"; bottom != want {
		t.Errorf("the bottom file's path has %d bytes, want %d", len(bottom), len(want))
	}
}

// Deep chains side by side make Walk climb back up past closed levels.
func TestWalkClimbsBack(t *testing.T) {
	root := t.TempDir()
	for _, top := range []string{"a", "b", "c"} {
		mustT(t, os.Mkdir(filepath.Join(root, top), 0o755))
		fstreetest.Chain(t, filepath.Join(root, top), "d", 3*MaxOpen, "f", top)
	}
	mustT(t, os.WriteFile(filepath.Join(root, "z"), nil, 0o644))
	fstreetest.LimitFDs(t, MaxOpen+8)
	var got []string
	err := Walk(root, func(e *Entry) error {
		if e.Stat.Mode&unix.S_IFMT != unix.S_IFDIR || e.Name != "d" {
			got = append(got, e.Path())
		}
		return nil
	})
	mustT(t, err)
	chain := strings.Repeat("d/", 3*MaxOpen)
	want := []string{".", "a", "a/" + chain + "f", "b", "b/" + chain + "f", "c", "c/" + chain + "f", "z"}
	if !slices.Equal(got, want) {
		t.Errorf("Walk visited %q, want %q", got, want)
	}
}

func TestWalkNeverFollows(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600))
	mustT(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	mustT(t, os.Symlink(outside, filepath.Join(root, "dir", "out")))
	mustT(t, os.Symlink("../..", filepath.Join(root, "dir", "up")))
	mustT(t, os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644))
	mustT(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o600))
	got := map[string]uint32{}
	mustT(t, Walk(root, func(e *Entry) error {
		got[e.Path()] = e.Stat.Mode & unix.S_IFMT
		return nil
	}))
	want := map[string]uint32{".": unix.S_IFDIR, "dir": unix.S_IFDIR, "dir/out": unix.S_IFLNK, "dir/up": unix.S_IFLNK,
		"file": unix.S_IFREG, "fifo": unix.S_IFIFO}
	if len(got) != len(want) {
		t.Errorf("Walk visited %v, want %v", got, want)
	}
	for p, mode := range want {
		if got[p] != mode {
			t.Errorf("%s: type %o, want %o", p, got[p], mode)
		}
	}
	// A symlink as the root is refused, not followed.
	link := filepath.Join(t.TempDir(), "link")
	mustT(t, os.Symlink(outside, link))
	if err := Walk(link, func(*Entry) error { return nil }); !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("Walk of a symlink = %v, want ELOOP", err)
	}
}

// A directory moved elsewhere while Walk is below it is not climbed out of
// into its new place.
func TestWalkNoticesMovedDirectory(t *testing.T) {
	root := t.TempDir()
	mustT(t, os.MkdirAll(filepath.Join(root, "a", "b"), 0o755))
	mustT(t, os.Mkdir(filepath.Join(root, "z"), 0o755))
	fstreetest.Chain(t, filepath.Join(root, "a", "b"), "d", 2*MaxOpen, "f", "")
	err := Walk(root, func(e *Entry) error {
		if e.Name == "f" {
			// a/b now lives in z: ".." from b leads to z, not a.
			return os.Rename(filepath.Join(root, "a", "b"), filepath.Join(root, "z", "b"))
		}
		return nil
	})
	if !errors.Is(err, ErrChanged) {
		t.Fatalf("Walk = %v, want ErrChanged", err)
	}
	if len(err.Error()) > 500 {
		t.Errorf("the error is %d bytes long", len(err.Error()))
	}
}

func TestWalkStaysOnItsMount(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	for _, d := range []string{"tmpfs", "bind", "elsewhere"} {
		mustT(t, os.Mkdir(filepath.Join(root, d), 0o755))
	}
	mustT(t, os.WriteFile(filepath.Join(root, "elsewhere", "under-bind"), nil, 0o644))
	mount(t, "tmpfs", filepath.Join(root, "tmpfs"), "tmpfs", 0)
	mustT(t, os.WriteFile(filepath.Join(root, "tmpfs", "under-tmpfs"), nil, 0o644))
	mount(t, filepath.Join(root, "elsewhere"), filepath.Join(root, "bind"), "", unix.MS_BIND)
	var got []string
	mustT(t, Walk(root, func(e *Entry) error {
		got = append(got, e.Path())
		return nil
	}))
	want := []string{".", "bind", "elsewhere", "elsewhere/under-bind", "tmpfs"}
	if !slices.Equal(got, want) {
		t.Errorf("Walk visited %q, want %q: not into mounts", got, want)
	}
}

// mount mounts for the test and unmounts, by path, when it ends.
func mount(t *testing.T, source, target, fstype string, flags uintptr) {
	t.Helper()
	mustT(t, unix.Mount(source, target, fstype, flags, ""))
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

func TestRemoveAllDeepTree(t *testing.T) {
	dir := deepDir(t)
	root := filepath.Join(dir, "tree")
	mustT(t, os.Mkdir(root, 0o755))
	fstreetest.Chain(t, root, "d", deep, "f", "bottom\n")
	fstreetest.LimitFDs(t, MaxOpen+8)
	if err := RemoveAll(root); err != nil {
		t.Fatalf("RemoveAll: %.300v", err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the tree is still there: %v", err)
	}
}

// Wide directories below closed levels: their reading goes on after each
// subdirectory, and starts again when their descriptor was reopened.
func TestRemoveAllWideAndDeep(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "tree")
	mustT(t, os.Mkdir(root, 0o755))
	fstreetest.Chain(t, root, "d", 2*MaxOpen, "", "")
	mid := filepath.Join(root, strings.Repeat("d/", MaxOpen+3))
	for i := range 600 {
		name := strings.Repeat("n", 100) + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		if i%50 == 0 {
			mustT(t, os.Mkdir(filepath.Join(mid, name), 0o755))
			fstreetest.Chain(t, filepath.Join(mid, name), "e", MaxOpen+2, "f", "x")
			continue
		}
		mustT(t, os.WriteFile(filepath.Join(mid, name), nil, 0o644))
	}
	fstreetest.LimitFDs(t, MaxOpen+8)
	mustT(t, RemoveAll(root))
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the tree is still there: %v", err)
	}
}

func TestRemoveAllNeverFollows(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	mustT(t, os.WriteFile(secret, []byte("host"), 0o600))
	root := filepath.Join(dir, "tree")
	mustT(t, os.MkdirAll(filepath.Join(root, "a"), 0o755))
	mustT(t, os.Symlink(outside, filepath.Join(root, "a", "out")))
	mustT(t, os.Symlink(secret, filepath.Join(root, "a", "secret")))
	mustT(t, os.Symlink("../../..", filepath.Join(root, "up")))
	mustT(t, RemoveAll(root))
	if b, err := os.ReadFile(secret); err != nil || string(b) != "host" {
		t.Fatalf("a file outside the tree changed: %q %v", b, err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the tree is still there: %v", err)
	}
	// A symlink given as the path is removed, and what it names is not.
	link := filepath.Join(dir, "link")
	mustT(t, os.Symlink(outside, link))
	mustT(t, RemoveAll(link))
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("removing a symlink removed what it names: %v", err)
	}
	// Missing is success; a file is removed.
	mustT(t, RemoveAll(filepath.Join(dir, "missing")))
	mustT(t, RemoveAll(filepath.Join(dir, "missing", "below")))
	file := filepath.Join(dir, "file")
	mustT(t, os.WriteFile(file, nil, 0o644))
	mustT(t, RemoveAll(file))
	if _, err := os.Lstat(file); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the file is still there: %v", err)
	}
}

func TestRemoveAllStopsAtMountPoints(t *testing.T) {
	needRoot(t)
	for _, deep := range []bool{false, true} {
		dir := t.TempDir()
		root := filepath.Join(dir, "tree")
		mustT(t, os.Mkdir(root, 0o755))
		at := root
		if deep {
			fstreetest.Chain(t, root, "d", MaxOpen+5, "", "")
			at = filepath.Join(root, strings.Repeat("d/", MaxOpen+5))
		}
		mnt := filepath.Join(at, "mnt")
		mustT(t, os.Mkdir(mnt, 0o755))
		mount(t, "tmpfs", mnt, "tmpfs", 0)
		mustT(t, os.WriteFile(filepath.Join(mnt, "data"), []byte("keep"), 0o644))
		err := RemoveAll(root)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "is a mount point") {
			t.Fatalf("RemoveAll over a mount = %v, want FailedPrecondition", err)
		}
		if len(err.Error()) > 500 {
			t.Errorf("the error is %d bytes long", len(err.Error()))
		}
		if b, err := os.ReadFile(filepath.Join(mnt, "data")); err != nil || string(b) != "keep" {
			t.Fatalf("the mounted filesystem lost its data: %q %v", b, err)
		}
		// And the mount point itself as the path.
		if err := RemoveAll(mnt); !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("RemoveAll of a mount point = %v, want FailedPrecondition", err)
		}
	}
}

func TestCursorDownRefuses(t *testing.T) {
	root := t.TempDir()
	mustT(t, os.Mkdir(filepath.Join(root, "dir"), 0o755))
	mustT(t, os.WriteFile(filepath.Join(root, "file"), nil, 0o644))
	mustT(t, os.Symlink("dir", filepath.Join(root, "link")))
	mustT(t, os.Symlink("/", filepath.Join(root, "abs")))
	c, err := Open(root)
	mustT(t, err)
	defer c.Close()
	for name, want := range map[string]error{
		"link": unix.ELOOP, "abs": unix.ELOOP, "file": unix.ENOTDIR, "missing": unix.ENOENT,
		"dir/..": unix.EINVAL, "..": unix.EINVAL, ".": unix.EINVAL, "": unix.EINVAL,
	} {
		if err := c.Down(name); !errors.Is(err, want) {
			t.Errorf("Down(%q) = %v, want %v", name, err, want)
		}
		if c.Depth() != 0 {
			t.Fatalf("a failed Down(%q) moved the cursor", name)
		}
	}
	mustT(t, c.Down("dir"))
	if c.Depth() != 1 || c.Name() != "dir" || c.Path() != "dir" {
		t.Errorf("after Down: depth %d, name %q, path %q", c.Depth(), c.Name(), c.Path())
	}
	mustT(t, c.Up())
	if err := c.Up(); err == nil {
		t.Error("Up at the root succeeded")
	}
}
