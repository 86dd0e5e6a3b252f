package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// CreateSnapshot copies volume id of backend b as snapshot name, whole or
// not at all: the copy is made in a hidden directory beside the volume
// (.creating-<volume>-<random>, which gc removes when the volume's lock is
// free) and renamed into <volume>/snapshots/<name>.
//
// A detached volume is copied under its lock, held as o.Holder. An
// attached loopfile volume is copied live: the ext4 filesystem its
// container has mounted is frozen (FIFREEZE) for the copy and thawed, and
// the snapshot says how long. An attached dir volume is refused: it cannot
// be frozen alone, since freezing its backend's filesystem would stop every
// volume there and whatever else the host keeps on it.
//
// On a backend that reserves space a loopfile snapshot is a copy of the
// image's data, never a reflink: blocks shared with the snapshot would
// make the volume's next writes need space that was never reserved. On an
// overcommit backend it is a reflink where the filesystem can (XFS, btrfs).
func (s *Store) CreateSnapshot(b Backend, id ID, name string, o CopyOptions) (Snapshot, error) {
	if err := ValidateSnapshotName(name); err != nil {
		return Snapshot{}, err
	}
	var snap Snapshot
	err := s.withSource(b, id, o.Holder, func(src *source) error {
		final := snapshotDir(src.dir, name)
		if _, err := os.Lstat(final); err == nil {
			return fmt.Errorf("%w: snapshot %s already exists: give another name, or remove it first", errdefs.ErrAlreadyExists, Quote(name))
		}
		snap = Snapshot{Name: name, Type: src.meta.Type, Size: src.meta.Size, Image: src.meta.Image, Lower: src.meta.Lower, Live: src.live}
		tmp, err := s.makeHidden(src.dir)
		if err != nil {
			return err
		}
		if err := s.fillSnapshot(b, src, tmp, &snap, o.Progress); err != nil {
			return errors.Join(err, fstree.RemoveAll(tmp))
		}
		if err := renameNoReplace(tmp, final); err != nil {
			err = errors.Join(err, fstree.RemoveAll(tmp))
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w: snapshot %s already exists", errdefs.ErrAlreadyExists, Quote(name))
			}
			return err
		}
		return host.SyncPath(filepath.Dir(final))
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot volume %s: %w", id, err)
	}
	return snap, nil
}

// fillSnapshot copies the volume into the hidden directory tmp and writes
// the snapshot's metadata there.
func (s *Store) fillSnapshot(b Backend, src *source, tmp string, snap *Snapshot, progress func(done, total int64)) error {
	var err error
	switch src.meta.Type {
	case Loopfile:
		image := filepath.Join(src.dir, imageFile)
		if !b.Overcommit {
			// A snapshot is only read: its copy need not reserve, but the
			// data it holds must fit.
			used, err := allocated(image)
			if err != nil {
				return err
			}
			if err := checkFree(b, used); err != nil {
				return err
			}
		}
		mode := noShare
		if b.Overcommit {
			mode = mayShare
		}
		snap.Method, snap.Frozen, err = src.copyImage(filepath.Join(tmp, imageFile), mode, progress)
	case Dir:
		snap.Method = MethodTree
		err = src.copyTree(filepath.Join(tmp, contentFS), progress)
	default:
		err = fmt.Errorf("volume has unknown type %q", src.meta.Type)
	}
	if err != nil {
		return err
	}
	snap.Created = time.Now().UTC()
	if err := writeJSON(filepath.Join(tmp, snapshotFile), snap); err != nil {
		return err
	}
	return host.SyncPath(tmp)
}

// ListSnapshots returns the snapshots of the volume in dir, oldest first.
func ListSnapshots(dir string) ([]Snapshot, error) {
	names, err := subdirs(filepath.Join(dir, snapshotsDir))
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, name := range names {
		snap, err := readSnapshot(dir, name)
		if errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
			continue // removed meanwhile, or not a snapshot
		}
		if err != nil {
			return nil, err
		}
		if snap.Type == Loopfile {
			if n, err := allocated(filepath.Join(snapshotDir(dir, name), imageFile)); err == nil {
				snap.Used = &n
			}
		}
		out = append(out, snap)
	}
	slices.SortFunc(out, func(a, b Snapshot) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Snapshots returns the snapshots of volume id in backend b, oldest first.
func (s *Store) Snapshots(b Backend, id ID) ([]Snapshot, error) {
	if _, err := readMetaOf(b.Dir(id), id); err != nil {
		return nil, err
	}
	return ListSnapshots(b.Dir(id))
}

// RemoveSnapshot removes snapshot name of volume id, held or not: it is
// renamed to a hidden name beside the volume first, so it vanishes whole
// even if the removal is cut short (gc finishes it).
func (s *Store) RemoveSnapshot(b Backend, id ID, name string) error {
	dir := b.Dir(id)
	err := func() error {
		if err := ValidateSnapshotName(name); err != nil {
			return err
		}
		if err := s.checkBackend(b); err != nil {
			return err
		}
		if _, err := readMetaOf(dir, id); err != nil {
			return err
		}
		unlock, err := lockSnapshots(dir, id)
		if err != nil {
			return err
		}
		defer unlock()
		if _, err := readSnapshot(dir, name); err != nil {
			return err
		}
		gone := hiddenPath(dir, removingPrefix)
		if err := os.Rename(snapshotDir(dir, name), gone); err != nil {
			return err
		}
		if err := host.SyncPath(filepath.Join(dir, snapshotsDir)); err != nil {
			return err
		}
		return fstree.RemoveAll(gone)
	}()
	if err != nil {
		return fmt.Errorf("remove snapshot %s of volume %s: %w", name, id, err)
	}
	return nil
}

// RestoreSnapshot puts snapshot name back as the content of volume id,
// which no container may hold: it holds the volume's lock, as o.Holder,
// and a held volume is refused with an error naming the holder. The
// content is copied from the snapshot in a hidden directory beside the
// volume and swapped in by one rename: killed at any point, the volume
// holds either its old content or the snapshot's, whole. The snapshot
// stays.
func (s *Store) RestoreSnapshot(b Backend, id ID, name string, o CopyOptions) (Snapshot, error) {
	var snap Snapshot
	err := s.withDetached(b, id, o.Holder, func(dir string, m Meta) error {
		var err error
		if snap, err = readSnapshot(dir, name); err != nil {
			return err
		}
		if snap.Type != m.Type {
			return fmt.Errorf("%w: snapshot %s is of a %s volume, and the volume is %s", errdefs.ErrFailedPrecondition, Quote(name), snap.Type, m.Type)
		}
		from := snapshotDir(dir, name)
		tmp, err := s.makeHidden(dir)
		if err != nil {
			return err
		}
		if err := s.restoreInto(b, dir, from, tmp, &snap, o.Progress); err != nil {
			return errors.Join(err, fstree.RemoveAll(tmp))
		}
		m.Image, m.Lower, m.Size = snap.Image, snap.Lower, snap.Size
		if err := WriteMeta(dir, m); err != nil {
			return err
		}
		// tmp holds what was replaced, if anything.
		return fstree.RemoveAll(tmp)
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("restore volume %s from snapshot %s: %w", id, name, err)
	}
	return snap, nil
}

// withDetached runs fn on volume id, with its metadata, while it holds
// the volume's lock as h and its snapshots' lock, once no mount of it is
// left here: what replacing a volume's content needs.
func (s *Store) withDetached(b Backend, id ID, h Holder, fn func(dir string, m Meta) error) error {
	return s.withLock(b, id, h, func() error {
		dir := b.Dir(id)
		m, err := readMetaOf(dir, id)
		if err != nil {
			return err
		}
		if err := checkUnmounted(id, dir, s.MountPath(id)); err != nil {
			return err
		}
		unlock, err := lockSnapshots(dir, id)
		if err != nil {
			return err
		}
		defer unlock()
		return fn(dir, m)
	})
}

// restoreInto copies the snapshot at from into tmp and swaps it into the
// volume in dir, in one rename.
func (s *Store) restoreInto(b Backend, dir, from, tmp string, snap *Snapshot, progress func(done, total int64)) error {
	switch snap.Type {
	case Loopfile:
		if !b.Overcommit {
			// The old image is removed only once the new one is in place.
			if err := checkFree(b, snap.Size); err != nil {
				return err
			}
		}
		image := filepath.Join(tmp, imageFile)
		method, err := copyImage(filepath.Join(from, imageFile), image, volumeCopy(b), progress)
		if err != nil {
			return err
		}
		snap.Method = method
		// rename replaces the old image in one step.
		if err := os.Rename(image, filepath.Join(dir, imageFile)); err != nil {
			return err
		}
	case Dir:
		content := filepath.Join(tmp, contentFS)
		if err := os.Mkdir(content, 0o755); err != nil {
			return err
		}
		if err := copyTree(filepath.Join(from, contentFS), content, progress); err != nil {
			return err
		}
		snap.Method = MethodTree
		if err := exchange(content, filepath.Join(dir, contentFS)); err != nil {
			return err
		}
	}
	return host.SyncPath(dir)
}

// volumeCopy is how an image that a volume of b will write is copied:
// reserved, unless b overcommits.
func volumeCopy(b Backend) copyMode {
	if b.Overcommit {
		return mayShare
	}
	return reserve
}

// makeHidden makes a hidden directory beside the volume in dir, for a copy
// being made: gc removes it once the volume's lock is free.
func (s *Store) makeHidden(dir string) (string, error) {
	tmp := hiddenPath(dir, creatingPrefix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return "", err
	}
	return tmp, nil
}

// lockSnapshots serializes the snapshot operations of the volume in dir,
// live ones included, which do not hold the volume's lock, by an flock on
// its snapshots directory. It thaws a filesystem that a snapshot killed
// while it was frozen left so.
func lockSnapshots(dir string, id ID) (func(), error) {
	sd := filepath.Join(dir, snapshotsDir)
	if err := os.Mkdir(sd, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	fd, err := unix.Open(sd, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: sd, Err: err}
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: another snapshot, restore, clone or reset of volume %s is running: wait for it to end", errdefs.ErrFailedPrecondition, id)
		}
		return nil, &os.PathError{Op: "flock", Path: sd, Err: err}
	}
	unlock := func() { unix.Close(fd) }
	if err := thawLeftover(sd); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// writeJSON writes v to path atomically, synced.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := atomicfile.New(path, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Cancel()
		return err
	}
	return f.Close()
}
