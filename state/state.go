//go:build linux

package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Dir is a state dir. Every path in it is derived here, from the names
// below (see the package doc).
type Dir string

// The directories of a state dir.
const (
	journalDir   = "journal"
	scratchDir   = "scratch"
	trashDir     = "trash"
	spareDir     = "spare"
	mountsDir    = "mounts"
	templatesDir = "templates"
	metricsDir   = "metrics"
	clusterDir   = "cluster"
	// oldLocksDir held volume locks before they moved to the backends;
	// gc still removes stale ones from it.
	oldLocksDir = "locks"
)

func (d Dir) path(elem ...string) string {
	return filepath.Join(append([]string{string(d)}, elem...)...)
}

// Journal is the path of a container's setup journal.
func (d Dir) Journal(namespace, id string) string { return d.path(journalDir, namespace, id) }

// Scratch is the directory of a container's scratch areas.
func (d Dir) Scratch(namespace, id string) string { return d.path(scratchDir, namespace, id) }

// InScratch says whether path lies in the scratch areas of d.
func (d Dir) InScratch(path string) bool {
	return strings.HasPrefix(path, d.path(scratchDir)+string(filepath.Separator))
}

// Templates is where pre-formatted images for disk scratch are kept.
func (d Dir) Templates() string { return d.path(templatesDir) }

// Spares is where released disk scratch filesystems are kept, mounted, for
// the next container (overlay.Spares).
func (d Dir) Spares() string { return d.path(spareDir) }

// Metrics is where package metrics keeps the shim's records of setup and
// teardown times, and its cache of dir volume walks.
func (d Dir) Metrics() string { return d.path(metricsDir) }

// Cluster is the directory of the node's cluster agent: its socket, lock
// file and log (package cluster/hold).
func (d Dir) Cluster() string { return d.path(clusterDir) }

// Mounts is where loopfile volumes are mounted while attached, each at its
// place below its backend (volumes.Store.MountPath).
func (d Dir) Mounts() string { return d.path(mountsDir) }

// Volumes are the directories of the state dir that the volume store
// uses: open the store with volumes.Open(d.Volumes(), ...).
func (d Dir) Volumes() volumes.Roots {
	return volumes.Roots{Mounts: d.Mounts(), State: string(d)}
}

// EachScratch calls fn with the scratch directory of every container that
// has one, with its namespace and ID.
func (d Dir) EachScratch(fn func(namespace, id, path string)) error {
	return d.each(scratchDir, fn)
}

// Undoer undoes journal steps on the real host, for one container.
type Undoer struct {
	Mounter host.Mounter
	Locks   *volumes.Locks // the locks this process holds
	Holder  volumes.Holder // whose locks these are
	// Unlink, when set, takes the files of File steps (disk scratch
	// images) once they are moved to State's trash, and unlinks them off
	// the path of the release. Without it they are unlinked in place.
	Unlink func(trashed string)
	State  Dir
	// Keep, when set, is asked first of each mount to undo, and keeps it
	// mounted when it says so: it took the mount for its own (a disk
	// scratch kept as a spare, see overlay.Spares), and what the journal
	// names of it is gone.
	Keep func(path string) bool
}

// Unmount implements journal.Undoer.
func (u Undoer) Unmount(path string) error {
	if u.Keep != nil && u.Keep(path) {
		return nil
	}
	return u.Mounter.Unmount(path)
}

// Unlock implements journal.Undoer.
func (u Undoer) Unlock(path string) error { return u.Locks.Release(path, u.Holder) }

// Sync implements journal.Undoer: a volume is flushed before it is released.
func (u Undoer) Sync(path string) error {
	if err := volumes.Syncfs(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Remove implements journal.Remover. A file that cannot be moved to the
// trash (the trash is on another filesystem) is unlinked in place.
func (u Undoer) Remove(path string) error {
	if u.Unlink != nil {
		if trashed, err := u.State.MoveToTrash(path); err == nil {
			if trashed != "" {
				u.Unlink(trashed)
			}
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Release replays the journal at path, releasing a container's storage.
func (u Undoer) Release(path string) error { return journal.Replay(path, u) }

// Prepare makes the state dir if it is missing and refuses one that users
// other than root may change, or whose parents they may: they could plant
// mounts and journals there.
func (d Dir) Prepare() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("make state dir: %w", err)
	}
	if err := host.CheckPrivateDir(string(d)); err != nil {
		return fmt.Errorf("state dir %s: %w", d, err)
	}
	return nil
}
