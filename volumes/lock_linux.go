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

// ErrHeld is returned when someone else holds a volume's lock.
var ErrHeld = errors.New("volume is held")

// Holder is who holds a volume; it is written into the lock file.
type Holder struct {
	Namespace string    `json:"namespace"`
	Container string    `json:"container"`
	Since     time.Time `json:"since"`
	PID       int       `json:"pid"`
}

// key names a holder among the holders of one process.
func (h Holder) key() string { return h.Namespace + "/" + h.Container }

// Locks are the volume locks this process holds, by path and holder. flock
// belongs to an open file, so every lock stays open here until released. A
// shim that serves a whole pod holds locks for several containers: each
// releases only its own.
type Locks struct {
	mu   sync.Mutex
	held map[string]map[string]*os.File // path -> holder key -> file
}

// NewLocks returns an empty set of locks.
func NewLocks() *Locks { return &Locks{held: map[string]map[string]*os.File{}} }

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
		if err := flockBriefly(f, how); err != nil {
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
		if l.held[path] == nil {
			l.held[path] = map[string]*os.File{}
		}
		l.held[path][h.key()] = f
		l.mu.Unlock()
		return nil
	}
}

// Release releases h's lock at path and removes the lock file when no one
// holds it any more. A lock that h does not hold here is released only if it
// is stale (its holder died): a lock that another live container holds, in
// this process or another, is left alone.
func (l *Locks) Release(path string, h Holder) error {
	l.mu.Lock()
	f, ours := l.held[path][h.key()]
	delete(l.held[path], h.key())
	others := len(l.held[path]) > 0
	if !others {
		delete(l.held, path)
	}
	l.mu.Unlock()
	if ours && others {
		return f.Close() // a shared lock that others here still hold
	}
	if !ours {
		if others {
			return nil
		}
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

// ReadHolder reports whether anyone holds the lock at path, shared or
// exclusive, and who when an exclusive holder wrote it (shared holders write
// no name: their Holder is empty). It tests the lock for a moment.
func ReadHolder(path string) (Holder, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return Holder{}, false // a stale file
	}
	var h Holder
	json.NewDecoder(f).Decode(&h)
	return h, true
}

// flockBriefly takes the lock, trying again a few times over 50 ms: tools
// that show who holds a volume test its lock for a moment, and that must not
// make a container's create fail.
func flockBriefly(f *os.File, how int) error {
	var err error
	for range 5 {
		if err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

func heldError(path string) error {
	h, _ := ReadHolder(path)
	who := "another container"
	if h.Container != "" {
		who = fmt.Sprintf("container %s (namespace %s, shim pid %d) since %s", h.Container, h.Namespace, h.PID, h.Since.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %w by %s: delete that container first, or mark the volume shared = true in its class",
		errdefs.ErrFailedPrecondition, ErrHeld, who)
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
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
