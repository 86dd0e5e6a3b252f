//go:build linux

package state

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func TestDirPaths(t *testing.T) {
	d := Dir("/var/lib/containerd-persist")
	tests := []struct {
		got, want string
	}{
		{d.Journal("default", "c1"), "/var/lib/containerd-persist/journal/default/c1"},
		{d.Journal("k8s.io", "3f2a"), "/var/lib/containerd-persist/journal/k8s.io/3f2a"},
		{d.Scratch("default", "c1"), "/var/lib/containerd-persist/scratch/default/c1"},
		{Dir("/state/").Scratch("ns", "c"), "/state/scratch/ns/c"},
		{d.Templates(), "/var/lib/containerd-persist/templates"},
		{d.Spares(), "/var/lib/containerd-persist/spare"},
		{d.Mounts(), "/var/lib/containerd-persist/mounts"},
		{d.Metrics(), "/var/lib/containerd-persist/metrics"},
		{d.Volumes().Mounts, "/var/lib/containerd-persist/mounts"},
		{d.Volumes().State, "/var/lib/containerd-persist"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// Every path the shim and the volume store keep in the state dir is inside
// one of config.StateSubdirs, which backends are kept out of.
func TestStateSubdirsCoverStatePaths(t *testing.T) {
	const root = "/state"
	id, err := volumes.NewID("ns", "", "v")
	if err != nil {
		t.Fatal(err)
	}
	d := Dir(root)
	for _, p := range []string{
		d.Journal("ns", "c"),
		d.Scratch("ns", "c"),
		d.Templates(),
		d.Metrics(),
		d.Cluster(),
		d.Trash(),
		d.Spares(),
		volumes.Open(d.Volumes(), &hosttest.Mounter{}, volumes.NewLocks()).MountPath(id),
		d.path(oldLocksDir, "ns", "v"),
	} {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(rel, "/"); !slices.Contains(config.StateSubdirs, first) {
			t.Errorf("%s is in state dir directory %q, which config.StateSubdirs lacks", p, first)
		}
	}
}

func TestInScratch(t *testing.T) {
	d := Dir("/state")
	for path, want := range map[string]bool{
		"/state/scratch/ns/c/1/fs": true,
		"/state/scratch":           false,
		"/state/scratchy/ns/c":     false,
		"/state/mounts/ns/fs":      false,
	} {
		if got := d.InScratch(path); got != want {
			t.Errorf("InScratch(%s) = %v, want %v", path, got, want)
		}
	}
}

func TestUndoerSync(t *testing.T) {
	m := &hosttest.Mounter{}
	u := Undoer{Mounter: m, Locks: volumes.NewLocks()}
	tmp := t.TempDir()
	// A volume whose setup died before it was made, or that was removed.
	if err := u.Sync(filepath.Join(tmp, "missing")); err != nil {
		t.Errorf("Sync of a missing path = %v", err)
	}
	if err := u.Sync(tmp); err != nil {
		t.Errorf("Sync of a directory = %v", err)
	}
	if len(m.Calls) != 0 {
		t.Errorf("Sync made host calls: %q", m.Ops())
	}
}

func TestUndoerRelease(t *testing.T) {
	tmp := t.TempDir()
	d := Dir(filepath.Join(tmp, "state"))
	h := volumes.Holder{Namespace: "ns", Container: "c1"}
	locks := volumes.NewLocks()
	lock := filepath.Join(string(d), "locks", "ns", "v")
	if err := locks.Acquire(lock, h, false); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "scratch")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	jpath := d.Journal("ns", "c1")
	j, err := journal.Create(jpath)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []journal.Step{
		{Kind: journal.Lock, Path: lock},
		{Kind: journal.Sync, Path: filepath.Join(tmp, "gone")},
		{Kind: journal.Dir, Path: dir},
		{Kind: journal.Mount, Path: dir},
	} {
		if err := j.Record(s); err != nil {
			t.Fatal(err)
		}
	}
	m := &hosttest.Mounter{}
	u := Undoer{Mounter: m, Locks: locks, Holder: h}
	if err := u.Release(jpath); !errors.Is(err, journal.ErrInUse) {
		t.Fatalf("Release of a live container's journal = %v, want ErrInUse", err)
	}
	j.Close()
	if err := u.Release(jpath); err != nil {
		t.Fatal(err)
	}
	if got, want := m.Ops(), []string{"unmount " + dir}; !reflect.DeepEqual(got, want) {
		t.Errorf("host calls = %q, want %q", got, want)
	}
	for _, p := range []string{jpath, dir, lock} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after Release: %v", p, err)
		}
	}
	if err := u.Release(jpath); err != nil {
		t.Errorf("second Release = %v", err)
	}
}

func TestPrepare(t *testing.T) {
	tmp := t.TempDir()
	d := Dir(filepath.Join(tmp, "a", "state"))
	if err := d.Prepare(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(string(d))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("state dir mode %v, want a directory for its owner only", fi.Mode())
	}
	if err := d.Prepare(); err != nil {
		t.Errorf("second Prepare = %v", err)
	}

	open := Dir(filepath.Join(tmp, "open"))
	if err := os.Mkdir(string(open), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(string(open), 0o777); err != nil {
		t.Fatal(err)
	}
	err = open.Prepare()
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), string(open)) || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("Prepare of a world-writable state dir = %v, want refused with what to do", err)
	}

	file := Dir(filepath.Join(tmp, "file"))
	if err := os.WriteFile(string(file), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := file.Prepare(); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("Prepare of a file = %v, want ENOTDIR", err)
	}
}
