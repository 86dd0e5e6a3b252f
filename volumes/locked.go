package volumes

import (
	"errors"
	"fmt"
)

// CreateLocked is Create under the volume's lock, held as h, as Attach does:
// no container attaches the volume, and so makes it too, meanwhile.
func (s *Store) CreateLocked(b Backend, m Meta, h Holder) (retErr error) {
	if err := ValidateName(m.Name); err != nil {
		return err
	}
	lock := s.LockPath(m.Namespace, m.Name)
	if err := s.locks.Acquire(lock, h, false); err != nil {
		return fmt.Errorf("create volume %s: %w", m.Name, err)
	}
	defer func() {
		if err := s.locks.Release(lock, h); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("release lock of volume %s: %w", m.Name, err))
		}
	}()
	return s.Create(b, m)
}
