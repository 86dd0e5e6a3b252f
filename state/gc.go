//go:build linux

package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Kinds of leftovers, in the order GC removes them: a journal's undo
// releases much of what the later kinds would find.
const (
	KindJournal = "journal" // setup journal of a dead container
	KindScratch = "scratch" // scratch dir of a container that has no journal
	KindTrash   = "trash"   // released scratch image not unlinked yet
	KindSpare   = "spare"   // disk scratch filesystem kept for the next container
	KindMount   = "mount"   // loopfile volume mount that no lock holds
	KindLoop    = "loop"    // unmounted loop device over one of our images
	KindVolume  = "volume"  // half-made or half-removed volume
	KindLock    = "lock"    // lock file that no one holds
)

// Leftover is something a dead container or an interrupted persistctl left.
type Leftover struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	What string `json:"what"`
	// locks are the volume locks to hold while it is removed.
	locks []string
}

// ErrLive is returned by Remove for a leftover that became a live
// container's storage since it was found; it is left alone.
var ErrLive = errors.New("in use by a live container: left alone")

// GC finds and removes leftovers in a state dir and the backends. It never
// touches what a live container holds: a journal or volume lock that is
// held means live, and GC takes those locks itself while it removes, so
// that no container can start using what it removes meanwhile.
type GC struct {
	Dir      Dir
	Backends []volumes.Backend
	Mounter  host.Mounter
	locks    *volumes.Locks
}

// NewGC returns a GC of state dir d and the backends.
func NewGC(d Dir, backends []volumes.Backend, m host.Mounter) *GC {
	return &GC{Dir: d, Backends: backends, Mounter: m, locks: volumes.NewLocks()}
}

// holder is how gc shows in a lock it takes.
func holder(ns string) volumes.Holder {
	return volumes.Holder{Namespace: ns, Container: "persistctl-gc", Since: time.Now().UTC(), PID: os.Getpid()}
}

// Find lists the leftovers, in the order Remove should take them.
func (g *GC) Find() ([]Leftover, error) {
	var out []Leftover
	add := func(l Leftover, format string, args ...any) {
		l.What = fmt.Sprintf(format, args...)
		out = append(out, l)
	}
	err := g.Dir.each(journalDir, func(ns, id, p string) {
		if !journal.InUse(p) {
			add(Leftover{Kind: KindJournal, Path: p}, "setup journal of dead container %s/%s", ns, id)
		}
	})
	if err != nil {
		return nil, err
	}
	err = g.Dir.EachScratch(func(ns, id, p string) {
		if _, err := os.Lstat(g.Dir.Journal(ns, id)); errors.Is(err, fs.ErrNotExist) {
			add(Leftover{Kind: KindScratch, Path: p}, "scratch of container %s/%s, which has no journal", ns, id)
		}
	})
	if err != nil {
		return nil, err
	}
	trashed, err := readDir(g.Dir.Trash())
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", g.Dir.Trash(), err)
	}
	for _, name := range trashed {
		add(Leftover{Kind: KindTrash, Path: filepath.Join(g.Dir.Trash(), name)}, "released scratch image, not unlinked yet")
	}
	spares, err := readDir(g.Dir.Spares())
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", g.Dir.Spares(), err)
	}
	for _, name := range spares {
		add(Leftover{Kind: KindSpare, Path: filepath.Join(g.Dir.Spares(), name)}, "spare scratch filesystem, kept mounted for the next container")
	}
	mounts := g.Dir.Mounts()
	err = volumes.Places(mounts, func(rel string) {
		locks := g.volumeLocks(rel)
		if !anyHeld(locks) {
			add(Leftover{Kind: KindMount, Path: filepath.Join(mounts, rel), locks: locks}, "mount of volume %s, which no container holds", rel)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", mounts, err)
	}
	loops, err := g.findLoops()
	if err != nil {
		return nil, err
	}
	out = append(out, loops...)
	for _, b := range g.Backends {
		err := volumes.Places(b.Path, func(rel string) {
			name, ok := volumes.HiddenVolume(path.Base(rel))
			if !ok {
				return
			}
			lock := b.LockAt(path.Join(path.Dir(rel), name))
			if !anyHeld([]string{lock}) {
				add(Leftover{Kind: KindVolume, Path: filepath.Join(b.Path, rel), locks: []string{lock}}, "volume %s, made or removed only in part", path.Join(path.Dir(rel), name))
			}
		})
		if err != nil {
			return nil, fmt.Errorf("gc backend %s: %w", b.Name, err)
		}
		if err := g.findLocks(b.LockAt(""), add); err != nil {
			return nil, err
		}
	}
	// Locks lived in the state dir before they moved to the backends.
	err = g.findLocks(g.Dir.path(oldLocksDir), add)
	return out, err
}

// findLocks adds the locks under root that no one holds.
func (g *GC) findLocks(root string, add func(l Leftover, format string, args ...any)) error {
	err := volumes.Places(root, func(rel string) {
		p := filepath.Join(root, rel)
		if !anyHeld([]string{p}) {
			add(Leftover{Kind: KindLock, Path: p}, "lock of volume %s, which no one holds", rel)
		}
	})
	if err != nil {
		return fmt.Errorf("gc %s: %w", root, err)
	}
	return nil
}

// volumeLocks are the locks, in every backend, of the volume whose place
// below its backend is rel: a mount under the state dir does not say which
// backend its volume is in.
func (g *GC) volumeLocks(rel string) []string {
	var locks []string
	for _, b := range g.Backends {
		locks = append(locks, b.LockAt(rel))
	}
	return locks
}

func anyHeld(locks []string) bool {
	for _, l := range locks {
		if _, held := volumes.ReadHolder(l); held {
			return true
		}
	}
	return false
}

// each calls fn for every <state_dir>/<sub>/<namespace>/<name>.
func (d Dir) each(sub string, fn func(ns, name, path string)) error {
	root := d.path(sub)
	nss, err := readDir(root)
	if err != nil {
		return fmt.Errorf("gc %s: %w", root, err)
	}
	for _, ns := range nss {
		names, err := readDir(filepath.Join(root, ns))
		if err != nil {
			return fmt.Errorf("gc %s: %w", root, err)
		}
		for _, name := range names {
			fn(ns, name, filepath.Join(root, ns, name))
		}
	}
	return nil
}

func readDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

func (g *GC) spares() overlay.Spares { return overlay.Spares{Dir: g.Dir.Spares(), Mounter: g.Mounter} }

// Remove removes one leftover that Find returned. What became live since
// is left alone, with ErrLive; what is already gone is success.
func (g *GC) Remove(l Leftover) error {
	ns, name := filepath.Base(filepath.Dir(l.Path)), filepath.Base(l.Path)
	var err error
	switch l.Kind {
	case KindJournal:
		err = Undoer{Mounter: g.Mounter, Locks: g.locks, Holder: holder("")}.Release(l.Path)
		if errors.Is(err, journal.ErrInUse) {
			err = ErrLive
		}
	case KindScratch:
		err = g.removeScratch(ns, name, l.Path)
	case KindTrash:
		// Nothing holds a file in the trash: whoever unlinks it first wins.
		if err = os.Remove(l.Path); errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	case KindSpare:
		err = g.spares().DrainOne(l.Path)
	case KindMount:
		err = g.underLocks(l.locks, func() error { return g.unmountAndRemove(l.Path, false) })
	case KindLoop:
		err = g.detachLoop(l.Path)
	case KindVolume:
		err = g.underLocks(l.locks, func() error { return g.unmountAndRemove(l.Path, true) })
	case KindLock:
		err = g.locks.Release(l.Path, volumes.Holder{})
	default:
		err = fmt.Errorf("unknown kind %q", l.Kind)
	}
	if err != nil {
		return fmt.Errorf("remove %s %s: %w", l.Kind, l.Path, err)
	}
	return nil
}

// removeScratch removes the scratch dir of a container that has no journal.
// It claims the container's journal meanwhile: a container of that ID that
// starts now finds it held and fails, rather than losing its scratch.
func (g *GC) removeScratch(ns, id, dir string) error {
	jpath := g.Dir.Journal(ns, id)
	j, err := journal.Create(jpath)
	if errors.Is(err, fs.ErrExist) {
		return ErrLive
	}
	if err != nil {
		return err
	}
	// Removed while still held, so no one can take over a claim about to end.
	defer j.Close()
	defer os.Remove(jpath)
	return g.unmountAndRemove(dir, true)
}

// underLocks runs fn holding the volume locks, or returns ErrLive.
func (g *GC) underLocks(locks []string, fn func() error) (retErr error) {
	h := holder("")
	for _, lock := range locks {
		if err := g.locks.Acquire(lock, h, false); err != nil {
			if errors.Is(err, volumes.ErrHeld) {
				err = ErrLive
			}
			return errors.Join(err, g.releaseAll(locks, h))
		}
	}
	defer func() { retErr = errors.Join(retErr, g.releaseAll(locks, h)) }()
	return fn()
}

// releaseAll releases h's hold of the locks; those it does not hold it
// leaves to their holders.
func (g *GC) releaseAll(locks []string, h volumes.Holder) error {
	var errs []error
	for _, lock := range locks {
		errs = append(errs, g.locks.Release(lock, h))
	}
	return errors.Join(errs...)
}

// unmountAndRemove unmounts whatever is mounted at or under dir, deepest
// first, and then removes dir: whole when all, else only if empty. Nothing
// is removed while anything is still mounted there (containerd #1868).
func (g *GC) unmountAndRemove(dir string, all bool) error {
	ms, err := host.MountsUnder(dir)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := g.Mounter.Unmount(m); err != nil {
			return err
		}
	}
	if ms, err := host.MountsUnder(dir); err != nil || len(ms) > 0 {
		return errors.Join(err, fmt.Errorf("%s is still mounted", strings.Join(ms, ", ")))
	}
	if all {
		// RemoveAll never follows a symlink (it unlinks them), and removes
		// a tree of any depth.
		return fstree.RemoveAll(dir)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
