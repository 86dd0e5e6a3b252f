package containerdtest

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// RemoveAll unmounts what is mounted under a directory, deepest first,
// before it removes it, and never removes what a mount it cannot undo
// still holds.
func TestRemoveAll(t *testing.T) {
	testenv.NeedRoot(t)
	dir := filepath.Join(t.TempDir(), "d")
	outer, inner := filepath.Join(dir, "a"), filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(outer, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", outer, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { UnmountAll(dir) })
	if err := os.Mkdir(inner, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if ms, err := MountsUnder(dir); err != nil || len(ms) != 2 {
		t.Fatalf("MountsUnder = %q, %v; want the two tmpfs", ms, err)
	}
	if err := RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", dir, err)
	}
	if ms, _ := MountsUnder(dir); len(ms) != 0 {
		t.Errorf("still mounted: %q", ms)
	}
}
