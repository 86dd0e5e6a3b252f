//go:build linux

package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host"
)

// Rename gives a volume in b that no container holds the name of to. The
// namespace and tenant stay: a volume never changes hands. It holds both
// names' locks, as h, so that no container attaches either meanwhile; a
// held volume is refused, naming its holder, and so is a name that is
// taken.
//
// The volume's directory is renamed in one step, never replacing anything
// (a long name's directory name is derived from it: see diskName), then its
// volume.json is replaced with one that carries the new name. Should the
// process die between the two, the volume sits under its new directory
// with its old name inside; running the same rename again finishes it.
func (s *Store) Rename(b Backend, from, to ID, h Holder) error {
	if err := errors.Join(from.check(), to.check()); err != nil {
		return err
	}
	if from.namespace != to.namespace || from.tenant != to.tenant {
		return fmt.Errorf("%w: rename volume %s to %s: a volume keeps its namespace and tenant; export it and import it under the other",
			errdefs.ErrInvalidArgument, from, to)
	}
	if from.name == to.name {
		return fmt.Errorf("%w: volume %s already has that name", errdefs.ErrInvalidArgument, from)
	}
	err := s.withLock(b, from, h, func() error {
		return s.withLock(b, to, h, func() error { return s.renameLocked(b, from, to) })
	})
	if err != nil {
		return fmt.Errorf("rename volume %s to %s: %w", from, Quote(to.name), err)
	}
	return nil
}

func (s *Store) renameLocked(b Backend, from, to ID) error {
	src, dst := b.Dir(from), b.Dir(to)
	m, err := readMetaOf(src, from)
	if errdefs.IsNotFound(err) {
		if done, ok := cutShort(dst, from); ok {
			done.Name = to.name
			return WriteMeta(dst, done)
		}
	}
	if err != nil {
		return err
	}
	if _, err := readMetaOf(dst, to); err == nil {
		return fmt.Errorf("%w: volume %s already exists", errdefs.ErrAlreadyExists, to)
	}
	if err := checkUnmounted(from, src, s.MountPath(from)); err != nil {
		return err
	}
	if err := renameNoReplace(src, dst); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// A directory that holds no volume of that name, or that another
			// long name's derived directory name took.
			return fmt.Errorf("%w: %s already exists: give the volume another name", errdefs.ErrAlreadyExists, dst)
		}
		return err
	}
	m.Name = to.name
	if err := WriteMeta(dst, m); err != nil {
		// The old volume.json is still in place: put the directory back.
		if uerr := renameNoReplace(dst, src); uerr != nil {
			err = errors.Join(err, fmt.Errorf("put volume %s back: %w", from, uerr))
		}
		return err
	}
	return host.SyncPath(filepath.Dir(dst))
}

// HalfRenamed returns the backend in which a rename of from to to was cut
// short: Find sees the volume under neither name, and Rename of the same
// names finishes it.
func (s *Store) HalfRenamed(backends []Backend, from, to ID) (Backend, bool) {
	for _, b := range backends {
		if _, ok := cutShort(b.Dir(to), from); ok {
			return b, true
		}
	}
	return Backend{}, false
}

// cutShort reports whether dir holds volume from under another name's
// directory: a rename that was cut short between its two steps.
func cutShort(dir string, from ID) (Meta, bool) {
	m, err := ReadMeta(dir)
	if err != nil || m.Name != from.name || m.Namespace != from.namespace || m.Tenant != from.tenant {
		return Meta{}, false
	}
	return m, true
}
