//go:build linux

package volumes

import (
	"errors"
	"fmt"
)

// CreateLocked is Create under the volume's lock, held as h, as Attach does:
// no container attaches the volume, and so makes it too, meanwhile.
func (s *Store) CreateLocked(b Backend, id ID, m Meta, h Holder) error {
	return s.withLock(b, id, h, func() error { return s.Create(b, id, m) })
}

// withLock runs fn holding the volume's lock exclusively, as h. A volume
// that a container holds is refused with an error naming the holder.
func (s *Store) withLock(b Backend, id ID, h Holder, fn func() error) (retErr error) {
	if err := s.checkBackend(b); err != nil {
		return err
	}
	lock := b.LockPath(id)
	if err := s.locks.Acquire(lock, h, false); err != nil {
		return fmt.Errorf("volume %s: %w", id, err)
	}
	defer func() {
		if err := s.locks.Release(lock, h); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("release lock of volume %s: %w", id, err))
		}
	}()
	return fn()
}
