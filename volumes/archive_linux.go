package volumes

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/containerd/errdefs"
)

// Export writes a detached volume's content to w as a tar stream (see
// exportTree), with its metadata first. It holds the volume's lock, as h,
// while it reads, so no container writes meanwhile; a volume a container
// holds is refused with an error naming the holder. A loopfile volume is
// mounted read-only for the export and unmounted after it.
func (s *Store) Export(b Backend, id ID, w io.Writer, h Holder) (retErr error) {
	name := id.name
	m, err := readMetaOf(b.Dir(id), id)
	if err != nil {
		return err
	}
	root, release, err := s.content(b, id, m, h, false)
	if err != nil {
		return fmt.Errorf("export volume %s: %w", name, err)
	}
	defer func() {
		if err := release(); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("export volume %s: %w", name, err))
		}
	}()
	if err := exportTree(root, w, m); err != nil {
		return fmt.Errorf("export volume %s: %w", name, err)
	}
	return nil
}

// ImportOptions says which volume an archive becomes.
type ImportOptions struct {
	ID      ID
	Backend Backend
	// Size of a loopfile volume; when 0, the exported volume's size if it
	// was a loopfile volume, else DefaultSize.
	Size        uint64
	DefaultSize uint64
	Force       bool // replace an existing, detached volume
	Holder      Holder
}

// Import makes a volume from a tar stream, whole or not at all: it is
// filled in a hidden directory (a loopfile volume's new image mounted under
// the state dir meanwhile) and renamed into place. The volume's lock is
// held throughout, so no container attaches it half-made. An existing
// volume is refused unless o.Force, and is then replaced only once the new
// one is complete.
func (s *Store) Import(r io.Reader, o ImportOptions) (m Meta, err error) {
	err = s.withLock(o.Backend, o.ID, o.Holder, func() error {
		m, err = s.importLocked(r, o)
		return err
	})
	if err != nil && !errdefs.IsAlreadyExists(err) {
		err = fmt.Errorf("import volume %s: %w", o.ID, err)
	}
	return m, err
}

func (s *Store) importLocked(r io.Reader, o ImportOptions) (Meta, error) {
	fail := func(err error) (Meta, error) { return Meta{}, err }
	final := o.Backend.Dir(o.ID)
	_, err := readMetaOf(final, o.ID)
	exists := err == nil
	switch {
	case err != nil && !errdefs.IsNotFound(err):
		return fail(err)
	case exists && !o.Force:
		return Meta{}, fmt.Errorf("%w: volume %s already exists: remove it first, or pass --force to replace it", errdefs.ErrAlreadyExists, o.ID)
	case exists:
		if err := checkUnmounted(o.ID, final, s.MountPath(o.ID)); err != nil {
			return Meta{}, err
		}
	}

	tail := &trailerReader{r: r}
	tr := tar.NewReader(tail)
	first, err := tr.Next()
	if err == io.EOF {
		return Meta{}, errdefs.ErrInvalidArgument.WithMessage("the archive is empty: give a file made by persistctl volumes export")
	}
	if err != nil {
		return fail(fmt.Errorf("read archive: %w", err))
	}
	m := Meta{Size: o.Size}
	if old, ok := exportedMeta(first); ok {
		m.Class, m.Image, m.ImageChanges, m.Labels = old.Class, old.Image, old.ImageChanges, old.Labels
		if m.Size == 0 && old.Type == Loopfile {
			m.Size = old.Size
		}
	}
	if o.Backend.Type != Loopfile {
		m.Size = 0
	} else if m.Size == 0 {
		m.Size = o.DefaultSize
	}

	fill := func(tmp string) error {
		if err := s.fill(tmp, o.Backend, o.ID, tr, first); err != nil {
			return err
		}
		if !tail.complete() {
			return errors.New("the archive ends early, without its end marker: it was cut short")
		}
		return nil
	}
	if err := s.create(o.Backend, o.ID, m, fill, exists); err != nil {
		return fail(err)
	}
	return ReadMeta(final)
}

// fill extracts an archive into the hidden directory of a new volume.
func (s *Store) fill(tmp string, b Backend, id ID, tr *tar.Reader, first *tar.Header) (retErr error) {
	root := filepath.Join(tmp, contentFS)
	if b.Type == Loopfile {
		target, unmount, err := s.mountDetached(tmp, id, false)
		if err != nil {
			return err
		}
		defer func() { retErr = errors.Join(retErr, unmount()) }()
		root = target
	}
	if err := importTree(root, tr, first); err != nil {
		return err
	}
	return Syncfs(root)
}
