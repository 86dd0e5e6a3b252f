package shim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// journalPointer is the file in a container's bundle that names its journal,
// so that `shim delete`, which knows only the bundle, can find it.
const journalPointer = "persist-journal"

// container is what storage setup knows of one container.
type container struct {
	namespace string
	id        string
	bundle    string
	spec      *specs.Spec
	rootfs    []mount.Mount
}

// storage sets up and tears down the storage of containers.
type storage struct {
	address  string // containerd's gRPC socket, asked about machine images
	mounter  host.Mounter
	reserve  func(image string, size uint64) error             // host.Reserve, of disk scratch images
	locks    *volumes.Locks                                    // held by this process for its containers' lives
	hooksFor func(annotations map[string]string) (Hook, error) // test builds only

	mu    sync.Mutex
	live  map[string]*live // by journal path
	early *early           // begun before its Create, not taken yet

	cluster clusterLocks // of containers with volumes on cluster backends
}

// live is what the storage of a live container needs for its release.
type live struct {
	journal   *journal.Journal // kept open and locked: the container lives
	holder    volumes.Holder   // whose volume locks to release
	hook      Hook             // test builds only
	pending   chan struct{}    // closed when background work on its volumes is done
	reserving []*reservation   // the space of its disk scratch, reserved in the background

	mode        releaseMode // how much of the release may run beside runc's delete
	volumeRoots []string    // the content of its volumes, synced on release
}

// setup gives a container the storage of its class, editing its spec and
// rootfs. On error everything it did is undone. The space of its disk
// scratch is still being reserved when it returns: reserved waits for that,
// and must succeed before the container may run.
func (s *storage) setup(ctx context.Context, req *setupRequest) (reserved func() error, _ error) {
	c := req.container
	run := s.takeEarly(ctx, req)
	if run == nil {
		var err error
		if run, err = s.begin(c, req.cfg, req.class); err != nil {
			return nil, err
		}
	}
	jpath, holder, hook := run.jpath, run.holder, run.hook
	err := run.do(ctx)
	if err == nil {
		err = hook("create", run.recorded())
	}
	j := run.j
	if err != nil {
		run.wait()
		if j == nil {
			return nil, err
		}
		if uerr := s.cluster.unlockAfter(jpath, j.Release(s.undoer(holder))); uerr != nil {
			log.G(ctx).WithError(uerr).WithField("journal", jpath).Error("undo failed setup")
		}
		return nil, err
	}
	reserving := run.reserving
	reserved = func() error { return reservedAll(reserving) }
	if j == nil {
		return reserved, nil // nothing on the host: nothing to release
	}
	s.mu.Lock()
	s.live[jpath] = &live{
		journal: j, holder: holder, hook: hook, pending: run.pending, reserving: reserving,
		mode:        releaseModeOf(c.spec, req.class.Mode == config.ModeMachine),
		volumeRoots: run.volumeRoots,
	}
	s.mu.Unlock()
	return reserved, nil
}

// begin starts a container's storage setup: the state dir is checked, and
// what an earlier container of the same ID left is cleaned.
func (s *storage) begin(c *container, cfg *config.Config, class *config.Class) (*setupRun, error) {
	if err := state.Dir(cfg.StateDir).Prepare(); err != nil {
		return nil, err
	}
	jpath := state.Dir(cfg.StateDir).Journal(c.namespace, c.id)
	holder := volumes.Holder{Namespace: c.namespace, Container: c.id, Since: time.Now().UTC(), PID: os.Getpid()}
	if err := s.undoer(holder).Release(jpath); err != nil {
		return nil, fmt.Errorf("clean up leftovers of an earlier container %s (run persistctl gc): %w", c.id, err)
	}
	hook, err := s.hookOf(c.spec.Annotations)
	if err != nil {
		return nil, err
	}
	return &setupRun{
		address: s.address,
		mounter: s.mounter,
		cfg:     cfg,
		class:   class,
		c:       c,
		jpath:   jpath,
		hook:    hook,
		holder:  holder,
		owner:   s,
		store:   volumes.Open(state.Dir(cfg.StateDir).Volumes(), s.mounter, s.locks),
		reserve: reserveEmptyingTrash(s.reserve, state.Dir(cfg.StateDir), s.mounter),
		vars:    templateVars(c.spec.Annotations, c.namespace, c.id),
		tenant:  tenantOf(c.spec.Annotations),
	}, nil
}

// hookOf is the test build's hook of a container; a hook that does nothing
// in a release build.
func (s *storage) hookOf(annotations map[string]string) (Hook, error) {
	var hook Hook
	if s.hooksFor != nil {
		var err error
		if hook, err = s.hooksFor(annotations); err != nil {
			return nil, err
		}
	}
	if hook == nil {
		hook = func(string, int) error { return nil }
	}
	return hook, nil
}

// teardown releases the storage of container id of namespace ns by its
// journal, which this process holds open while the container lives; a
// missing journal is success.
func (s *storage) teardown(path, ns, id string) error {
	s.mu.Lock()
	l := s.live[path]
	delete(s.live, path)
	s.mu.Unlock()
	if l == nil {
		// `shim delete` comes after every shim exit, nearly always for
		// storage that was released already: nothing to do or record.
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
	}
	defer recordTeardown(path, ns, id, time.Now())
	u := s.undoer(volumes.Holder{Namespace: ns, Container: id})
	d := state.OfJournal(path)
	if l == nil {
		// A shim killed in the middle of a release may have moved images
		// to the trash and not unlinked them.
		err := u.Release(path)
		_, terr := d.EmptyTrash()
		return errors.Join(err, terr)
	}
	u.State, u.Unlink = d, trash.unlinker(d)
	// Only the daemon, which ran the container, knows that its processes
	// are gone: `shim delete` unmounts rather than keep a spare.
	keep := spares(string(d), s.mounter)
	u.Keep = func(path string) bool { return d.InScratch(path) && keep.Put(path) }
	if l.pending != nil {
		<-l.pending // it writes to a volume that is released next
	}
	reservedAll(l.reserving) // of images about to be removed: its error does not matter now
	return s.cluster.unlockAfter(path, l.journal.Release(hookedUndoer{u, l.hook}))
}

// hookedUndoer calls a container's delete hook before each undo step.
type hookedUndoer struct {
	state.Undoer
	hook Hook
}

func (u hookedUndoer) BeforeUndo(done int) error { return u.hook("delete", done) }

// teardownBundle releases the storage of the container whose bundle is given.
func (s *storage) teardownBundle(bundle, ns, id string) error {
	b, err := os.ReadFile(filepath.Join(bundle, journalPointer))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.teardown(strings.TrimSpace(string(b)), ns, id)
}

func (s *storage) undoer(h volumes.Holder) state.Undoer {
	return state.Undoer{Mounter: s.mounter, Locks: s.locks, Holder: h}
}

func newStorage(address string, m host.Mounter) *storage {
	return &storage{address: address, mounter: m, reserve: host.Reserve, locks: volumes.NewLocks(), live: map[string]*live{}}
}
