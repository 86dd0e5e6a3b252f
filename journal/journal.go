package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Kind says how a step is undone.
type Kind string

const (
	// Dir is a directory that setup created; undo removes it if empty.
	Dir Kind = "dir"
	// File is a file that setup created; undo removes it.
	File Kind = "file"
	// Mount is a mountpoint; undo unmounts it (loop devices are autoclear and
	// detach with the last unmount).
	Mount Kind = "mount"
	// Lock is a volume lock file; undo releases it.
	Lock Kind = "lock"
	// Sync is a volume in use; undo flushes its filesystem before it is
	// unmounted or released.
	Sync Kind = "sync"
)

// Step is one undoable action.
type Step struct {
	Kind Kind   `json:"kind"`
	Path string `json:"path"`
	// Lock, when set, is the volume lock that this step's undo must
	// succeed before: a volume that may still be mounted or unsynced here
	// keeps its lock, so no other container mounts it meanwhile.
	Lock string `json:"lock,omitempty"`
}

// Journal is an open journal file that steps are appended to.
type Journal struct {
	path     string
	f        *os.File
	recorded int
	before   func(n int) error
}

// BeforeRecord sets a function that Record calls with the number of steps
// recorded so far, before it records the next; its error fails the Record.
// Test builds use it to fail or kill the shim after step n.
func (j *Journal) BeforeRecord(fn func(n int) error) { j.before = fn }

// Create makes a new journal at path and locks it until Close: a locked
// journal belongs to a live container, and Replay leaves it alone. It fails
// if a journal exists, since that belongs to a setup never cleaned up.
//
// The file is locked under a temporary name and then linked into place, so
// that no one can find it at path unlocked and take it for a dead one.
func Create(path string) (*Journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	err = lock(f)
	if err == nil {
		err = os.Link(tmp, path)
	}
	os.Remove(tmp)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Journal{path: path, f: f}, nil
}

// Path returns the journal's file path.
func (j *Journal) Path() string { return j.path }

// Record appends a step. It is not fsynced: the steps only matter while the
// machine is up, since a reboot undoes every mount and lock anyway.
func (j *Journal) Record(s Step) error {
	if j.before != nil {
		if err := j.before(j.recorded); err != nil {
			return err
		}
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("record %s %s in journal %s: %w", s.Kind, s.Path, j.path, err)
	}
	j.recorded++
	return nil
}

// Recorded returns how many steps were recorded.
func (j *Journal) Recorded() int { return j.recorded }

// Close closes and unlocks the file; the journal stays on disk for Replay.
func (j *Journal) Close() error { return j.f.Close() }

// Read returns the steps of the journal at path. A torn last line (the
// process died while writing it) is ignored: its action was never started.
func Read(path string) ([]Step, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, data)
}

func parse(path string, data []byte) ([]Step, error) {
	lines := bytes.Split(data, []byte("\n"))
	var steps []Step
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		var s Step
		if err := json.Unmarshal(line, &s); err != nil {
			if i == len(lines)-1 {
				break
			}
			return nil, fmt.Errorf("read journal %s line %d: %w", path, i+1, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

// Undoer carries out the undo of each kind of step. Each method treats an
// already-undone step as success.
type Undoer interface {
	Unmount(path string) error
	Unlock(path string) error
	Sync(path string) error
}

// Remover is an Undoer that removes the files of File steps itself; others
// have them unlinked in place. A state dir moves them to its trash, to be
// unlinked off the path of a container's delete.
type Remover interface {
	Remove(path string) error
}

// BeforeUndoer is an Undoer that is told of each step before it is undone;
// its error stops the undo there. Test builds use it to fail or kill the shim
// in the middle of a cleanup.
type BeforeUndoer interface {
	Undoer
	BeforeUndo(done int) error
}

// Undo undoes steps in reverse order. It goes on past a failed step, so that
// everything that can be released is, and returns every failure. But a lock
// that a failed step names in its Lock field is kept.
func Undo(steps []Step, u Undoer) error {
	var errs []error
	kept := map[string]bool{}
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		if b, ok := u.(BeforeUndoer); ok {
			if err := b.BeforeUndo(len(steps) - 1 - i); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		var err error
		switch s.Kind {
		case Mount:
			err = u.Unmount(s.Path)
		case Lock:
			if kept[s.Path] {
				errs = append(errs, fmt.Errorf("kept lock %s: its volume was not released", s.Path))
				continue
			}
			err = u.Unlock(s.Path)
		case Sync:
			err = u.Sync(s.Path)
		case File:
			if r, ok := u.(Remover); ok {
				err = r.Remove(s.Path)
				break
			}
			fallthrough
		case Dir:
			err = os.Remove(s.Path)
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
		default:
			err = fmt.Errorf("unknown step kind %q", s.Kind)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undo %s %s: %w", s.Kind, s.Path, err))
			if s.Lock != "" {
				kept[s.Lock] = true
			}
		}
	}
	return errors.Join(errs...)
}

// Replay undoes the journal at path and removes it once every step is undone.
// A missing journal is success: there is nothing to clean up. A journal still
// locked by a live process is ErrInUse, and is left alone.
func Replay(path string, u Undoer) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return err
	}
	// Another replayer may have finished and removed it since we opened it,
	// and a new container of the same ID made a new one at path.
	opened, err := f.Stat()
	if err != nil {
		return err
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(opened, now) {
		return nil
	}
	return release(f, path, u)
}

// Release undoes the steps of this journal, which the caller holds open and
// locked, and removes it once every step is undone; it closes the journal
// either way. Undoing without letting go of the lock first means nobody else
// can take the journal for a dead one in between.
func (j *Journal) Release(u Undoer) error {
	defer j.f.Close()
	return release(j.f, j.path, u)
}

// release undoes the journal open as f, which the caller has locked.
func release(f *os.File, path string, u Undoer) error {
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40))
	if err != nil {
		return err
	}
	steps, err := parse(path, data)
	if err != nil {
		return err
	}
	if err := Undo(steps, u); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// InUse reports whether a live process holds the journal at path.
func InUse(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return errors.Is(tryLock(f), ErrInUse)
}
