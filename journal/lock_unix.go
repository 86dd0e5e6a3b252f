//go:build unix

package journal

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by Replay for the journal of a live container.
var ErrInUse = errors.New("in use by a live container")

// lock holds f exclusively; the kernel drops the lock when its holder dies.
func lock(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("lock journal %s: %w", f.Name(), err)
	}
	return nil
}

// tryLock takes f's lock, or returns ErrInUse when a live process holds it.
func tryLock(f *os.File) error {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("journal %s: %w", f.Name(), ErrInUse)
	}
	return err
}
