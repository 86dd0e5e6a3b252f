//go:build linux

package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

var (
	holderA = Holder{Namespace: "ns", Container: "web-1", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), PID: 4242}
	holderB = Holder{Namespace: "ns", Container: "web-2", Since: time.Date(2026, 1, 2, 3, 9, 0, 0, time.UTC), PID: 4343}
)

func lockPathIn(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "locks", "ns", "v") // Acquire makes the parents
}

// otherProcessLock holds path's lock through an open file of its own, as
// another shim would: flock conflicts between open files, not processes.
func otherProcessLock(t *testing.T, path string, how int) *os.File {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return f
}

// lockedByAnyone reports whether someone holds path's lock.
func lockedByAnyone(t *testing.T, path string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

func sameHolder(a, b Holder) bool {
	return a.Namespace == b.Namespace && a.Container == b.Container && a.PID == b.PID && a.Since.Equal(b.Since)
}

func TestLocksConflict(t *testing.T) {
	tests := []struct {
		name          string
		first, second bool // shared
		wantErr       []string
	}{
		{name: "exclusive then exclusive", wantErr: []string{
			"container web-1", "namespace ns", "shim pid 4242", "2026-01-02T03:04:05Z",
			"delete that container first", "shared = true",
		}},
		{name: "shared then exclusive", first: true, wantErr: []string{"another container", "delete that container first"}},
		{name: "exclusive then shared", second: true, wantErr: []string{"container web-1", "namespace ns"}},
		{name: "shared then shared", first: true, second: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := lockPathIn(t)
			a, b := NewLocks(), NewLocks() // two shims
			if err := a.Acquire(path, holderA, tt.first); err != nil {
				t.Fatal(err)
			}
			err := b.Acquire(path, holderB, tt.second)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("second Acquire = %v, want ok", err)
				}
				return
			}
			if !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("second Acquire = %v, want FailedPrecondition", err)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			// The refused one must not have disturbed the holder.
			if !lockedByAnyone(t, path) {
				t.Error("lock lost after a refused Acquire")
			}
			if !tt.first {
				if h, ok := ReadHolder(path); !ok || !sameHolder(h, holderA) {
					t.Errorf("ReadHolder = %+v, %v; want %+v", h, ok, holderA)
				}
			}
		})
	}
}

// TestLocksOneShim covers a shim that serves a whole pod: one Locks holds
// the locks of several containers, and each releases only its own.
func TestLocksOneShim(t *testing.T) {
	t.Run("exclusive", func(t *testing.T) {
		path := lockPathIn(t)
		l := NewLocks()
		if err := l.Acquire(path, holderA, false); err != nil {
			t.Fatal(err)
		}
		err := l.Acquire(path, holderB, false)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "container web-1") {
			t.Fatalf("second container's Acquire = %v, want FailedPrecondition naming web-1", err)
		}
		// The second container journaled the lock before trying it, so its
		// cleanup releases it: that must not end the first one's hold.
		if err := l.Release(path, holderB); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("lock file removed by the other container's cleanup: %v", err)
		}
		if h, ok := ReadHolder(path); !ok || !sameHolder(h, holderA) {
			t.Errorf("holder = %+v, %v; want %+v", h, ok, holderA)
		}
		if err := NewLocks().Acquire(path, holderB, false); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("another shim's Acquire = %v, want FailedPrecondition", err)
		}
		if err := l.Release(path, holderA); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock file left after release: %v", err)
		}
	})

	t.Run("shared", func(t *testing.T) {
		path := lockPathIn(t)
		l := NewLocks()
		for _, h := range []Holder{holderA, holderB} {
			if err := l.Acquire(path, h, true); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Release(path, holderA); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("lock file removed while web-2 holds it: %v", err)
		}
		if err := NewLocks().Acquire(path, holderA, false); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exclusive Acquire while web-2 holds shared = %v, want FailedPrecondition", err)
		}
		if err := l.Release(path, holderB); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock file left after both released: %v", err)
		}
		// Nothing of the two holds stays open in this process.
		if err := NewLocks().Acquire(path, holderA, false); err != nil {
			t.Errorf("exclusive Acquire after both released = %v", err)
		}
	})
}

func TestLocksRelease(t *testing.T) {
	t.Run("exclusive", func(t *testing.T) {
		path := lockPathIn(t)
		l := NewLocks()
		if err := l.Acquire(path, holderA, false); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(path, holderA); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock file left: %v", err)
		}
		if _, ok := ReadHolder(path); ok {
			t.Error("ReadHolder after Release says held")
		}
		// Releasing again is success: cleanup is replayed.
		if err := l.Release(path, holderA); err != nil {
			t.Errorf("second Release = %v", err)
		}
	})

	t.Run("last shared holder removes the file", func(t *testing.T) {
		path := lockPathIn(t)
		a, b := NewLocks(), NewLocks() // two shims
		if err := a.Acquire(path, holderA, true); err != nil {
			t.Fatal(err)
		}
		if err := b.Acquire(path, holderB, true); err != nil {
			t.Fatal(err)
		}
		if err := a.Release(path, holderA); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("lock file removed while b holds it: %v", err)
		}
		if err := NewLocks().Acquire(path, holderB, false); !errdefs.IsFailedPrecondition(err) {
			t.Errorf("exclusive Acquire while b holds shared = %v, want FailedPrecondition", err)
		}
		if err := b.Release(path, holderB); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("lock file left after the last holder released: %v", err)
		}
	})

	t.Run("holder alive elsewhere", func(t *testing.T) {
		for _, how := range []int{unix.LOCK_EX, unix.LOCK_SH} {
			path := lockPathIn(t)
			otherProcessLock(t, path, how)
			// This process never held it, as after a shim restart: a
			// cleanup replay must leave a live holder's lock alone.
			if err := NewLocks().Release(path, holderA); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("live holder's lock file removed: %v", err)
			}
			if !lockedByAnyone(t, path) {
				t.Error("live holder lost its lock")
			}
		}
	})

	t.Run("stale file", func(t *testing.T) {
		path := lockPathIn(t)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		// What a shim killed with -9 leaves: a file nobody holds.
		if err := os.WriteFile(path, []byte(`{"container":"dead"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := NewLocks().Release(path, holderA); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale lock file left: %v", err)
		}
	})

	t.Run("missing", func(t *testing.T) {
		if err := NewLocks().Release(lockPathIn(t), holderA); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLocksReacquireAfterRelease covers the unlink race: a contender that
// opened the lock file before its holder released it ends up with a lock on
// an unlinked file, which guards nothing.
func TestLocksReacquireAfterRelease(t *testing.T) {
	path := lockPathIn(t)
	a := NewLocks()
	if err := a.Acquire(path, holderA, false); err != nil {
		t.Fatal(err)
	}
	early, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	if err := a.Release(path, holderA); err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(early.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("flock of the released file: %v", err)
	}
	if samePath(early, path) {
		t.Fatal("released lock file still at its path")
	}

	b := NewLocks()
	if err := b.Acquire(path, holderB, false); err != nil {
		t.Fatalf("Acquire after Release = %v", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("lock file missing after Acquire: %v", err)
	}
	if h, ok := ReadHolder(path); !ok || !sameHolder(h, holderB) {
		t.Errorf("ReadHolder = %+v, %v; want %+v", h, ok, holderB)
	}
	if err := NewLocks().Acquire(path, holderA, false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("third Acquire = %v, want FailedPrecondition", err)
	}
}

// TestLocksExclusion runs shims that take and release one exclusive lock as
// fast as they can, and checks that no two ever hold it at once.
func TestLocksExclusion(t *testing.T) {
	path := lockPathIn(t)
	const shims, rounds = 8, 200
	var holding, taken atomic.Int32
	var overlap atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, shims)
	for i := range shims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := NewLocks()
			h := Holder{Namespace: "ns", Container: fmt.Sprintf("c%d", i)}
			for range rounds {
				if err := l.Acquire(path, h, false); err != nil {
					if errdefs.IsFailedPrecondition(err) {
						continue
					}
					errs <- err
					return
				}
				if holding.Add(1) > 1 {
					overlap.Store(true)
				}
				taken.Add(1)
				holding.Add(-1)
				if err := l.Release(path, h); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if overlap.Load() {
		t.Error("two shims held the exclusive lock at once")
	}
	if taken.Load() == 0 {
		t.Error("no shim ever took the lock")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left after every shim released: %v", err)
	}
}

func TestReadHolder(t *testing.T) {
	path := lockPathIn(t)
	if _, ok := ReadHolder(path); ok {
		t.Error("ReadHolder of a missing file says held")
	}
	l := NewLocks()
	if err := l.Acquire(path, holderA, false); err != nil {
		t.Fatal(err)
	}
	if h, ok := ReadHolder(path); !ok || !sameHolder(h, holderA) {
		t.Errorf("ReadHolder = %+v, %v; want %+v", h, ok, holderA)
	}
	// Asking must not take or break the lock.
	if err := NewLocks().Acquire(path, holderB, false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Acquire after ReadHolder = %v, want FailedPrecondition", err)
	}
	if err := l.Release(path, holderA); err != nil {
		t.Fatal(err)
	}

	// A file nobody holds is stale, whatever it says.
	if err := os.WriteFile(path, []byte(`{"container":"dead"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if h, ok := ReadHolder(path); ok {
		t.Errorf("ReadHolder of a stale file = %+v, true", h)
	}

	// A holder whose file says nothing yet is still a holder.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	otherProcessLock(t, path, unix.LOCK_EX)
	if h, ok := ReadHolder(path); !ok || h != (Holder{}) {
		t.Errorf("ReadHolder of a held empty file = %+v, %v; want an unnamed holder", h, ok)
	}
}
