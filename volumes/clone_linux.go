package volumes

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
)

// Clone makes volume dst in b, a copy of volume src of b: its content,
// size, class, labels and, for a machine root volume, the image under its
// layer. dst is made whole or not at all, under its lock, held as
// o.Holder, like Create. src is copied as CreateSnapshot copies it: under
// its lock when detached, frozen when a container holds it (a loopfile
// volume; a held dir volume is refused).
//
// The copy is a volume, so it follows the backend's space rule: on a
// backend that reserves space its image is a reserved copy; on an
// overcommit backend, a reflink where the filesystem can.
func (s *Store) Clone(b Backend, src, dst ID, o CopyOptions) (Info, error) {
	if err := dst.check(); err != nil {
		return Info{}, err
	}
	if src.namespace != dst.namespace || src.tenant != dst.tenant {
		return Info{}, fmt.Errorf("%w: clone volume %s to %s: a clone stays in its namespace and tenant; export the volume and import it under the other",
			errdefs.ErrInvalidArgument, src, dst)
	}
	if src.name == dst.name {
		return Info{}, fmt.Errorf("%w: clone volume %s onto itself: give the clone another name", errdefs.ErrInvalidArgument, src)
	}
	err := s.withSource(b, src, o.Holder, func(from *source) error {
		m := from.meta
		clone := Meta{Size: m.Size, Class: m.Class, Image: m.Image, Lower: m.Lower, ImageChanges: m.ImageChanges, Labels: m.Labels}
		fill := func(tmp string) error {
			switch m.Type {
			case Loopfile:
				// create made an empty image, and checked that a reserved
				// one fits: the copy takes its place.
				image := filepath.Join(tmp, imageFile)
				if err := os.Remove(image); err != nil {
					return err
				}
				_, _, err := from.copyImage(image, volumeCopy(b), o.Progress)
				return err
			case Dir:
				content := filepath.Join(tmp, contentFS)
				return from.copyTree(content, o.Progress)
			}
			return fmt.Errorf("volume has unknown type %q", m.Type)
		}
		return s.withLock(b, dst, o.Holder, func() error {
			return s.create(b, dst, clone, fill, false)
		})
	})
	if err != nil {
		return Info{}, fmt.Errorf("clone volume %s to %s: %w", src, Quote(dst.name), err)
	}
	return s.Inspect(b, dst)
}
