package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Remove deletes a detached volume. It holds the volume's lock, as h, while
// it works, so no container can attach the volume meanwhile; a volume that
// a container holds is refused with an error naming the holder. The volume
// is first renamed to a hidden name, so that it vanishes whole even if the
// removal of its content is cut short (gc finishes it then).
func (s *Store) Remove(b Backend, ns, name string, h Holder) (retErr error) {
	if err := ValidateName(name); err != nil {
		return err
	}
	lock := s.LockPath(ns, name)
	if err := s.locks.Acquire(lock, h, false); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	defer func() {
		if err := s.locks.Release(lock, h); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("release lock of volume %s: %w", name, err))
		}
	}()
	dir := b.Dir(ns, name)
	if _, err := ReadMeta(dir); err != nil {
		return err
	}
	if err := checkUnmounted(name, dir, s.MountPath(ns, name)); err != nil {
		return err
	}
	gone, err := s.hide(dir, removingPrefix)
	if err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	// os.RemoveAll unlinks symlinks and opens directories with O_NOFOLLOW
	// (unlinkat and openat from the parent), so links a container planted
	// are removed, never followed.
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// hide renames a volume directory to a hidden name beside it.
func (s *Store) hide(dir, prefix string) (string, error) {
	hidden := hiddenPath(dir, prefix)
	if err := os.Rename(dir, hidden); err != nil {
		return "", err
	}
	return hidden, syncDir(filepath.Dir(dir))
}

// HiddenVolume parses the name of a hidden directory that a volume is made
// or removed in: .creating-<name>-<random> or .removing-<name>-<random>.
func HiddenVolume(dirName string) (name string, ok bool) {
	for _, p := range []string{creatingPrefix, removingPrefix} {
		rest, found := strings.CutPrefix(dirName, p)
		if !found || len(rest) < 14 || rest[len(rest)-13] != '-' {
			continue
		}
		name = rest[:len(rest)-13]
		return name, ValidateName(name) == nil
	}
	return "", false
}
