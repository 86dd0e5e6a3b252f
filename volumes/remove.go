//go:build linux

package volumes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// Remove deletes a detached volume. It holds the volume's lock, as h, while
// it works, so no container can attach the volume meanwhile; a volume that
// a container holds is refused with an error naming the holder. The volume
// is first renamed to a hidden name, so that it vanishes whole even if the
// removal of its content is cut short (gc finishes it then).
func (s *Store) Remove(b Backend, id ID, h Holder) error {
	err := s.withLock(b, id, h, func() error {
		dir := b.Dir(id)
		if _, err := readMetaOf(dir, id); err != nil {
			return err
		}
		if err := checkUnmounted(id, dir, s.MountPath(id)); err != nil {
			return err
		}
		gone, err := s.hide(dir, removingPrefix)
		if err != nil {
			return err
		}
		// Links a container planted are removed, never followed, and a tree
		// of any depth goes: see fstree.RemoveAll.
		return fstree.RemoveAll(gone)
	})
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", id, err)
	}
	return nil
}

// hide renames a volume directory to a hidden name beside it.
func (s *Store) hide(dir, prefix string) (string, error) {
	hidden := hiddenPath(dir, prefix)
	if err := os.Rename(dir, hidden); err != nil {
		return "", err
	}
	return hidden, host.SyncPath(filepath.Dir(dir))
}

// HiddenVolume parses the name of a hidden directory that a volume is made
// or removed in: .creating-<name>-<random> or .removing-<name>-<random>,
// where name is the volume's directory name (see diskName).
func HiddenVolume(dirName string) (name string, ok bool) {
	for _, p := range []string{creatingPrefix, removingPrefix} {
		rest, found := strings.CutPrefix(dirName, p)
		if !found || len(rest) < 14 || rest[len(rest)-13] != '-' {
			continue
		}
		name = rest[:len(rest)-13]
		return name, validDiskName(name)
	}
	return "", false
}
