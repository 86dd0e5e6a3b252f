package volumes

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/fstree/fstreetest"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// pastPathMax is deep enough that a path from the root to the bottom
// ("d/" per level) is longer than PATH_MAX (4096), and shallow enough to
// export: each tar header holds the whole path.
const pastPathMax = 5000

// tmpfsDir is an empty directory on a fresh tmpfs, unmounted (which frees
// whatever a test built there, at any depth) when the test ends.
func tmpfsDir(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// deepState is what a round trip must keep of a deep chain.
type deepState struct {
	dirs, others int
	oldDirs      int    // directories with the test's old mtime
	bottom       string // content of the file at the bottom
	bottomPath   string
	link         string // target of the symlink at the bottom
	hardLinked   bool   // the bottom's hard link shares its inode
}

func readDeep(t *testing.T, root string, old time.Time) deepState {
	t.Helper()
	var s deepState
	var bottomIno uint64
	err := fstree.Walk(root, func(e *fstree.Entry) error {
		switch e.Stat.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			s.dirs++
			if e.Stat.Mtim.Nano() == old.UnixNano() {
				s.oldDirs++
			}
			return nil
		case unix.S_IFLNK:
			s.link, _ = readlinkat(e.Dir, e.Name)
		case unix.S_IFREG:
			if e.Name == "f" {
				s.bottomPath = e.Path()
				bottomIno = e.Stat.Ino
				b := make([]byte, 64)
				fd, err := unix.Openat(e.Dir, e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				n, _ := unix.Read(fd, b)
				unix.Close(fd)
				s.bottom = string(b[:max(n, 0)])
			} else {
				s.hardLinked = e.Stat.Ino == bottomIno && e.Stat.Nlink == 2
			}
		}
		s.others++
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %.300v", root, err)
	}
	return s
}

// A tree deeper than PATH_MAX, exported and imported, with few descriptors.
func TestExportImportPastPathMax(t *testing.T) {
	dir := tmpfsDir(t)
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fstreetest.Chain(t, src, "d", pastPathMax, "f", "bottom\n")
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	// At the bottom: a symlink, and a hard link of f; every directory gets
	// an old time, which the import must set after writing in it.
	err := fstree.Walk(src, func(e *fstree.Entry) error {
		if e.Name == "f" {
			if err := unix.Symlinkat("../../../../etc/passwd", e.Dir, "link"); err != nil {
				return err
			}
			if err := unix.Linkat(e.Dir, "f", e.Dir, "hard", 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = fstree.Walk(src, func(e *fstree.Entry) error {
		if !isDir(&e.Stat) {
			return nil
		}
		return setTimes(e.Dir, e.Name, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	want := readDeep(t, src, old)
	if len(want.bottomPath) <= 4096 || want.dirs != pastPathMax+1 || want.oldDirs != want.dirs || !want.hardLinked {
		t.Fatalf("the source tree is not what the test needs: %d dirs, %d with the old time, bottom path of %d bytes, hard link %v",
			want.dirs, want.oldDirs, len(want.bottomPath), want.hardLinked)
	}

	fstreetest.LimitFDs(t, 2*fstree.MaxOpen+16) // the importer's cursor and one for a hard link's target
	var archive bytes.Buffer
	if err := exportTree(src, &archive, Meta{Name: "deep"}); err != nil {
		t.Fatalf("export: %.300v", err)
	}
	if err := importTree(dst, tar.NewReader(&archive), nil); err != nil {
		t.Fatalf("import: %.300v", err)
	}
	got := readDeep(t, dst, old)
	if got != want {
		t.Errorf("after the round trip: %+v, want %+v", shortState(got), shortState(want))
	}
}

func shortState(s deepState) deepState {
	s.bottomPath = fstree.Shorten(s.bottomPath)
	return s
}

// Refusals of entries deep in an archive name them in one short line.
func TestImportDeepRefusalsAreShort(t *testing.T) {
	deep := strings.Repeat("d/", pastPathMax)
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string
	}{
		{"climbs out", []*tar.Header{{Typeflag: tar.TypeReg, Name: deep + strings.Repeat("../", pastPathMax+1) + "x"}}, "climbs out"},
		{"through a symlink", []*tar.Header{
			{Typeflag: tar.TypeDir, Name: deep},
			{Typeflag: tar.TypeSymlink, Name: deep + "l", Linkname: "/"},
			{Typeflag: tar.TypeReg, Name: deep + "l/x"},
		}, "symlink is on the way"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(tmpfsDir(t), "dst")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			for _, h := range tc.hdrs {
				h.Mode = 0o755
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			err := importTree(dst, tar.NewReader(&b), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import = %.300v, want an error with %q", err, tc.want)
			}
			if len(err.Error()) > 600 {
				t.Errorf("the error is %d bytes long: %.300v", len(err.Error()), err)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("import = %v, want InvalidArgument", err)
			}
			if _, err := os.Lstat("/x"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the import wrote /x: %v", err)
			}
		})
	}
}

// deep is the depth of the trees du, rm and a forced import must handle: far
// past RLIMIT_NOFILE (a container builds 21,000 levels in 13 s).
const deep = 100_000

// du and rm over a 100,000-level tree, and an import that replaces a deep
// volume, with few descriptors.
func TestUsageRemoveReplaceDeep(t *testing.T) {
	dir := tmpfsDir(t)
	if err := os.Mkdir(filepath.Join(dir, "volumes"), 0o700); err != nil {
		t.Fatal(err)
	}
	w := &archiveWorld{
		store:   Open(stateRoots(filepath.Join(dir, "state")), host.Linux{}, NewLocks()),
		backend: Backend{Name: "local", Type: Dir, Path: filepath.Join(dir, "volumes")},
		holder:  Holder{Namespace: "ns", Container: "persistctl-test", Since: time.Now()},
	}
	var small bytes.Buffer
	for _, name := range []string{"du", "small"} {
		if err := w.store.Create(w.backend, vid("ns", name), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.store.Export(w.backend, vid("ns", "small"), &small, w.holder); err != nil {
		t.Fatal(err)
	}
	content := filepath.Join(w.backend.Dir(vid("ns", "du")), contentFS)
	fstreetest.Chain(t, content, "d", deep, "f", "bottom\n")
	fstreetest.LimitFDs(t, fstree.MaxOpen+16)

	u, err := w.store.Usage(w.backend, vid("ns", "du"), w.holder)
	if err != nil {
		t.Fatalf("du: %.300v", err)
	}
	if u.Inodes != deep+2 || u.Apparent < 7 {
		t.Errorf("du = %+v, want %d inodes: the root, %d directories and a file", u, deep+2, deep)
	}
	if err := w.store.Remove(w.backend, vid("ns", "du"), w.holder); err != nil {
		t.Fatalf("rm: %.300v", err)
	}
	if _, err := os.Lstat(w.backend.Dir(vid("ns", "du"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rm left the volume: %v", err)
	}

	// Deeper than the descriptors allowed is enough to show the removal of
	// the old volume is bounded; rm above showed the depth.
	fstreetest.Chain(t, filepath.Join(w.backend.Dir(vid("ns", "small")), contentFS), "d", pastPathMax, "", "")
	o := ImportOptions{ID: vid("ns", "small"), Backend: w.backend, Holder: w.holder, Force: true}
	if _, err := w.store.Import(bytes.NewReader(small.Bytes()), o); err != nil {
		t.Fatalf("import --force over a deep volume: %.300v", err)
	}
	if ls := leftHidden(t, filepath.Join(w.backend.Path, "ns")); len(ls) > 0 {
		t.Errorf("hidden directories left: %v", ls)
	}
	if _, err := os.Lstat(filepath.Join(w.backend.Dir(vid("ns", "small")), contentFS, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the replaced volume's tree is still in place: %v", err)
	}
}
