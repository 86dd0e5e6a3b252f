package shim

import (
	"context"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"

	"github.com/containerd-persist/containerd-persist/config"
)

// The daemon starts setting up its container's storage before Create
// arrives, while containerd connects to it: what needs nothing of Create
// is done, from the spec and config read ahead (see preload). The class
// volumes that exist are attached (locked, and a loopfile volume
// loop-mounted), the filesystems of disk scratch areas are mounted, and
// cluster locks are taken (see cluster_early.go). A loop mount takes 2-5
// ms, and an etcd transaction about as much, which the start would
// otherwise wait for.
//
// It is journaled as the rest of setup is, in the same journal, before
// each step: a Create that never comes leaves nothing that `shim delete`
// (which containerd runs after every shim exit) does not undo. Create's
// setup takes it over, or, if Create is for another container, config or
// class, undoes it and starts again.

// early is a container's storage setup begun before its Create.
type early struct {
	ns, id string
	cfg    *config.Config
	class  *config.Class
	done   chan struct{} // closed when run and err are set
	run    *setupRun     // nil if it could not begin
	err    error
}

// startEarly begins, in the background, the storage setup of the
// container of bundle, whose spec and config were read ahead, if its class
// has volumes or disk scratch, and takes its cluster locks. A pod's
// sandbox has none of its pod's storage.
func (s *storage) startEarly(ctx context.Context, bundle string, spec *bundleSpec, cfg *config.Config) {
	ns, ok := namespaces.Namespace(ctx)
	if !ok || spec.Annotations[criContainerType] == "sandbox" {
		return
	}
	class, err := resolveClass(cfg, spec.Annotations)
	if err != nil {
		return // Create says why
	}
	c := &container{namespace: ns, id: filepath.Base(bundle), bundle: bundle, spec: spec.Spec}
	s.startEarlyLocks(c, cfg, class)
	if !hasDiskScratch(class) && len(class.Volumes) == 0 {
		return
	}
	e := &early{ns: ns, id: c.id, cfg: cfg, class: class, done: make(chan struct{})}
	s.mu.Lock()
	s.early = e
	s.mu.Unlock()
	go func() {
		defer close(e.done)
		if e.run, e.err = s.begin(c, cfg, class); e.err == nil {
			e.err = e.run.earlyVolumes()
		}
		if e.err == nil {
			e.err = e.run.earlyScratch()
		}
	}()
}

func hasDiskScratch(class *config.Class) bool {
	for _, sc := range class.Scratch {
		if sc.Medium == config.MediumDisk {
			return true
		}
	}
	return false
}

// takeEarly returns the setup begun early for req's container, to go on
// with, or nil; one begun for another container, config or class, or that
// failed, is undone first.
func (s *storage) takeEarly(ctx context.Context, req *setupRequest) *setupRun {
	c := req.container
	return s.takeEarlyIf(ctx, func(e *early) bool {
		return e.ns == c.namespace && e.id == c.id && e.cfg == req.cfg && e.class == req.class
	}, c)
}

// dropEarly undoes the setup begun early, if any is left, and releases
// the cluster locks taken ahead: for a Create that failed before its setup.
func (s *storage) dropEarly(ctx context.Context) {
	s.takeEarlyIf(ctx, func(*early) bool { return false }, nil)
	s.cluster.dropEarly()
}

func (s *storage) takeEarlyIf(ctx context.Context, ok func(*early) bool, c *container) *setupRun {
	s.mu.Lock()
	e := s.early
	s.early = nil
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	<-e.done
	if e.err == nil && ok(e) {
		e.run.c = c // with the root that Create brings
		return e.run
	}
	if r := e.run; r != nil {
		r.wait()
		if r.j != nil {
			if err := r.j.Release(s.undoer(r.holder)); err != nil {
				log.G(ctx).WithError(err).WithField("journal", r.jpath).Error("undo storage set up before Create")
			}
		}
	}
	return nil
}
