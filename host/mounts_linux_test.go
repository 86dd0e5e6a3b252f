package host

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// Mounts under a directory come deepest first, and a link planted where
// the directory was leads nowhere.
func TestMountsUnder(t *testing.T) {
	testenv.NeedRoot(t)
	tmp := t.TempDir()
	dir, sub := filepath.Join(tmp, "d"), filepath.Join(tmp, "d", "sub")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tmpfs := mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}
	if err := (Linux{}).Mount(tmpfs, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.UnmountRecursive(dir, unix.MNT_DETACH) })
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (Linux{}).Mount(tmpfs, sub); err != nil {
		t.Fatal(err)
	}
	if got, err := MountsUnder(dir); err != nil || !reflect.DeepEqual(got, []string{sub, dir}) {
		t.Errorf("MountsUnder(%s) = %q, %v; want %q", dir, got, err, []string{sub, dir})
	}
	link := filepath.Join(tmp, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, err := MountsUnder(link); err != nil || len(got) != 0 {
		t.Errorf("MountsUnder of a link = %q, %v; want nothing", got, err)
	}
	if got, err := MountsUnder(filepath.Join(tmp, "missing")); err != nil || len(got) != 0 {
		t.Errorf("MountsUnder of a missing path = %q, %v; want nothing", got, err)
	}
}

// MountedAt tells a mount's root from a plain directory, and never follows
// a link to one.
func TestMountedAt(t *testing.T) {
	testenv.NeedRoot(t)
	tmp := t.TempDir()
	dir, plain, link := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "plain"), filepath.Join(tmp, "link")
	for _, d := range []string{dir, plain} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := (Linux{}).Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mount.UnmountRecursive(dir, unix.MNT_DETACH) })
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{dir: true, plain: false, link: false, filepath.Join(dir, "in"): false, filepath.Join(tmp, "missing"): false} {
		if got := MountedAt(path); got != want {
			t.Errorf("MountedAt(%s) = %v, want %v", path, got, want)
		}
	}
}
