package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Holder is who holds a volume; it is written into the lock file.
type Holder struct {
	Namespace string    `json:"namespace"`
	Container string    `json:"container"`
	Since     time.Time `json:"since"`
	PID       int       `json:"pid"`
}

// Locks are the volume locks this process holds. flock belongs to an open
// file, so every lock stays open here until it is released.
type Locks struct {
	mu   sync.Mutex
	held map[string]*os.File
}

// NewLocks returns an empty set of locks.
func NewLocks() *Locks { return &Locks{held: map[string]*os.File{}} }

// Acquire takes the lock at path for h, exclusive unless shared. When another
// holds it, the error names the holder and since when.
func (l *Locks) Acquire(path string, h Holder, shared bool) error {
	how := unix.LOCK_EX
	if shared {
		how = unix.LOCK_SH
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return heldError(path)
			}
			return fmt.Errorf("lock %s: %w", path, err)
		}
		// A releaser unlinks the file before unlocking it; a lock taken on an
		// unlinked file guards nothing, so take it again on the new file.
		if !samePath(f, path) {
			f.Close()
			continue
		}
		if !shared {
			if err := writeHolder(f, h); err != nil {
				f.Close()
				return err
			}
		}
		l.mu.Lock()
		l.held[path] = f
		l.mu.Unlock()
		return nil
	}
}

// Release releases the lock at path and removes its file when no one else
// holds it. A lock this process does not hold is released only if it is
// stale (its holder died): a lock a live container took since is left alone.
func (l *Locks) Release(path string) error {
	l.mu.Lock()
	f, ours := l.held[path]
	delete(l.held, path)
	l.mu.Unlock()
	if !ours {
		var err error
		f, err = os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	defer f.Close()
	// Only the last holder removes the file: try to hold it alone.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil
		}
		return fmt.Errorf("lock %s: %w", path, err)
	}
	if samePath(f, path) {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// ReadHolder returns who holds the lock at path, if anyone does.
func ReadHolder(path string) (Holder, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return Holder{}, false // nobody holds it: a stale file
	}
	var h Holder
	if err := json.NewDecoder(f).Decode(&h); err != nil {
		return Holder{}, true
	}
	return h, true
}

func heldError(path string) error {
	h, _ := ReadHolder(path)
	who := "another container"
	if h.Container != "" {
		who = fmt.Sprintf("container %s (namespace %s, shim pid %d) since %s", h.Container, h.Namespace, h.PID, h.Since.Format(time.RFC3339))
	}
	return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
		"volume is held by %s: delete that container first, or mark the volume shared = true in its class", who))
}

func writeHolder(f *os.File, h Holder) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteAt(b, 0)
	return err
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
