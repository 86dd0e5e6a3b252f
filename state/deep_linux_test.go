package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/fstree/fstreetest"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// A volume whose removal was cut short, holding a 100,000-level tree, and
// the scratch of a container that has no journal, holding a tree deeper
// than the descriptors gc may open: gc removes both.
func TestGCRemovesDeepTrees(t *testing.T) {
	testenv.NeedRoot(t)
	root := t.TempDir()
	// tmpfs: 100,000 levels take seconds there, minutes on a disk
	// filesystem mounted with discard. Unmounting frees what is left.
	mustT(t, unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0700"))
	t.Cleanup(func() {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
	})
	d := Dir(filepath.Join(root, "state"))
	b := volumes.Backend{Name: "local", Type: volumes.Dir, Path: filepath.Join(root, "volumes")}
	half := filepath.Join(b.Path, "ns", ".removing-deep-0123456789ab")
	mustT(t, os.MkdirAll(filepath.Join(half, "fs"), 0o700))
	fstreetest.Chain(t, filepath.Join(half, "fs"), "d", 100_000, "f", "bottom\n")
	scratch := d.Scratch("ns", "gone")
	mustT(t, os.MkdirAll(scratch, 0o700))
	fstreetest.Chain(t, scratch, "d", 5*fstree.MaxOpen, "f", "")
	fstreetest.LimitFDs(t, fstree.MaxOpen+16)

	g := NewGC(d, []volumes.Backend{b}, host.Linux{})
	found, err := g.Find()
	mustT(t, err)
	if got, want := kindsAndPaths(found), []string{KindScratch + " " + scratch, KindVolume + " " + half}; !slices.Equal(got, want) {
		t.Fatalf("Find = %q, want %q", got, want)
	}
	for _, l := range found {
		if err := g.Remove(l); err != nil {
			t.Errorf("Remove %s: %.300v", l.Kind, err)
		}
		if _, err := os.Lstat(l.Path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", l.Path, err)
		}
	}
}
