package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// rootLayer are the directories of a machine root volume that hold its
// container's root layer: the overlay's upper and work directories (see
// shim setup and overlay.MoveUpper). Class volumes are volumes of their
// own, and a reset leaves them alone.
var rootLayer = []string{"upper", "work"}

// Reset drops the root layer of machine root volume id, which no container
// may hold: its next container starts from its image again. It holds the
// volume's lock, as h, and a held volume is refused with an error naming
// the holder. Its snapshots stay. Each layer directory is first renamed to
// a hidden name in the volume, so it vanishes whole; one that a reset cut
// short left is removed by the next.
func (s *Store) Reset(b Backend, id ID, h Holder) error {
	err := s.withDetached(b, id, h, func(dir string, m Meta) (retErr error) {
		root := filepath.Join(dir, contentFS)
		if m.Type == Loopfile {
			var unmount func() error
			var err error
			if root, unmount, err = s.mountDetached(dir, id, false); err != nil {
				return err
			}
			defer func() { retErr = errors.Join(retErr, unmount()) }()
		}
		if err := resetRoot(root, m); err != nil {
			return err
		}
		m.Image, m.Lower = nil, ""
		return WriteMeta(dir, m)
	})
	if err != nil {
		return fmt.Errorf("reset volume %s: %w", id, err)
	}
	return nil
}

// resetRoot removes the root layer from a machine volume's content root.
func resetRoot(root string, m Meta) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	layer := m.Image != nil
	var gone []string
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), resetPrefix):
			gone = append(gone, e.Name())
		case e.Name() == rootLayer[0] || e.Name() == rootLayer[1]:
			layer = true
		}
	}
	if !layer {
		return fmt.Errorf("%w: volume %s holds no root layer (no upper directory): reset is for the root volume of a machine class; remove other volumes with persistctl volumes rm",
			errdefs.ErrFailedPrecondition, Quote(m.Name))
	}
	for _, name := range rootLayer {
		hidden := filepath.Base(hiddenPath(filepath.Join(root, name), resetPrefix))
		err := os.Rename(filepath.Join(root, name), filepath.Join(root, hidden))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		gone = append(gone, hidden)
	}
	if err := host.SyncPath(root); err != nil {
		return err
	}
	for _, name := range gone {
		// Links a container planted are removed, never followed.
		if err := fstree.RemoveAll(filepath.Join(root, name)); err != nil {
			return err
		}
	}
	return nil
}
