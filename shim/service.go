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

	taskapi "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/config"
)

// service is runc's task service with storage setup around Create and
// Delete; every other call goes straight to runc.
type service struct {
	taskapi.TTRPCTaskService
	configs *configs
	storage *storage
	pre     *preloaded // the spec of the daemon's own bundle, read ahead

	mu       sync.Mutex
	gcHeld   map[string]bool // tasks that hold GC off until they start
	initHeld sync.Once       // ends the hold taken when the shim started
}

// RegisterTTRPC registers the wrapper, not runc's service, so that Create and
// Delete come here.
func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskapi.RegisterTTRPCTaskService(server, s)
	return nil
}

// Create sets up the container's storage, then has runc create it. A pod's
// sandbox (pause) container carries the pod's annotations but none of its
// storage, which the pod's containers get: it goes to runc untouched.
func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (_ *taskapi.CreateTaskResponse, retErr error) {
	s.holdGC(r.ID)
	defer func() {
		if retErr != nil {
			s.releaseGC(r.ID, 0)
			s.pre.settled()
			s.storage.dropEarly(ctx) // a create that failed before its setup
		}
		s.initHeld.Do(func() { gcHold.releaseAfter(0) })
	}()
	opts, err := splitOptions(r.Options)
	if err != nil {
		return nil, toTTRPC(fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err))
	}
	r.Options = opts.runc // runc must never see ours
	spec, ok := s.pre.take(r.Bundle)
	if !ok {
		if spec, err = readSpec(r.Bundle); err != nil {
			return nil, toTTRPC(err)
		}
	}
	if r.Options, err = runcOptions(r.Options, spec.cgroupsPath()); err != nil {
		return nil, toTTRPC(err)
	}
	if spec.Annotations[criContainerType] == "sandbox" {
		return s.TTRPCTaskService.Create(ctx, r)
	}
	req, err := s.prepare(ctx, r, opts, spec.Spec)
	if err != nil {
		return nil, toTTRPC(err)
	}
	c := req.container
	s.pre.settled() // a setup begun early is known before this one starts
	start := time.Now()
	reserved, err := s.storage.setup(ctx, req)
	if err != nil {
		return nil, toTTRPC(fmt.Errorf("container %s, class %s: %w", c.id, req.class.Name, err))
	}
	defer s.storage.recordSetup(req, start) // written in the background once Create returns
	defer func() {
		if retErr != nil {
			if err := s.storage.teardownBundle(c.bundle, c.namespace, c.id); err != nil {
				log.G(ctx).WithError(err).WithField("id", c.id).Error("undo storage of a failed create")
			}
		}
	}()
	if err := writeSpec(c.bundle, spec); err != nil {
		reserved()
		return nil, toTTRPC(err)
	}
	r.Rootfs = mount.ToProto(c.rootfs)
	resp, err := s.TTRPCTaskService.Create(ctx, r)
	if rerr := reserved(); err == nil && rerr != nil {
		// Created, not started: its process has not run. It is killed
		// (runc's delete of a live process waits 10 s for its I/O) and
		// deleted before its storage is released.
		s.TTRPCTaskService.Kill(ctx, &taskapi.KillRequest{ID: r.ID, Signal: uint32(unix.SIGKILL)})
		if _, derr := s.TTRPCTaskService.Delete(ctx, &taskapi.DeleteRequest{ID: r.ID}); derr != nil {
			log.G(ctx).WithError(derr).WithField("id", c.id).Error("delete a container whose scratch space could not be reserved")
		}
		return nil, toTTRPC(fmt.Errorf("container %s, class %s: %w", c.id, req.class.Name, rerr))
	}
	return resp, err
}

// Start starts a task. The start of a created container ends its hold on
// garbage collection, a little later.
func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	resp, err := s.TTRPCTaskService.Start(ctx, r)
	if r.ExecID == "" {
		s.releaseGC(r.ID, gcAfterStart)
	}
	return resp, err
}

// holdGC holds garbage collection off while task id is created and
// started (see gcHold).
func (s *service) holdGC(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gcHeld[id] {
		return
	}
	if s.gcHeld == nil {
		s.gcHeld = map[string]bool{}
	}
	s.gcHeld[id] = true
	gcHold.hold()
}

// releaseGC ends task id's hold on garbage collection after d.
func (s *service) releaseGC(id string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gcHeld[id] {
		return
	}
	delete(s.gcHeld, id)
	gcHold.releaseAfter(d)
}

// setupRequest is what a container's storage setup needs.
type setupRequest struct {
	container *container
	cfg       *config.Config
	class     *config.Class
}

// prepare finds the container's config and class.
func (s *service) prepare(ctx context.Context, r *taskapi.CreateTaskRequest, opts runtimeOptions, spec *specs.Spec) (*setupRequest, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := s.configs.load(opts)
	if err != nil {
		return nil, classifyConfigError(err)
	}
	class, err := resolveClass(cfg, spec.Annotations)
	if err != nil {
		return nil, err
	}
	c := &container{
		namespace: ns,
		id:        r.ID,
		bundle:    r.Bundle,
		spec:      spec,
		rootfs:    mount.FromProto(r.Rootfs),
	}
	return &setupRequest{container: c, cfg: cfg, class: class}, nil
}

// Delete has runc delete the task and releases its storage: beside runc's
// delete when the task has stopped and that is safe (see releaseMode), else
// after it. The storage is released even when runc no longer knows the
// task. A release that fails is logged, not returned: runc has deleted the
// task, so containerd would not ask again. The journal stays, and `shim
// delete` replays it when this shim exits (persistctl gc after that).
func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	if r.ExecID != "" {
		return s.TTRPCTaskService.Delete(ctx, r)
	}
	wait := s.releaseBeside(ctx, r.ID)
	resp, err := s.TTRPCTaskService.Delete(ctx, r)
	released, rerr := false, error(nil)
	if wait != nil {
		released, rerr = wait()
	}
	if err == nil || errdefs.IsNotFound(errgrpc.ToNative(err)) {
		s.releaseGC(r.ID, 0) // a task deleted before it started
		if !released {
			rerr = s.release(ctx, r.ID)
		}
	}
	if rerr != nil {
		log.G(ctx).WithError(rerr).WithField("id", r.ID).Error("release storage of a deleted task; retried when the shim exits")
	}
	return resp, err
}

// releaseBeside starts what of the release of task id's storage may run
// beside runc's delete, if the task has stopped; nil if nothing may.
func (s *service) releaseBeside(ctx context.Context, id string) func() (bool, error) {
	st, err := s.TTRPCTaskService.State(ctx, &taskapi.StateRequest{ID: id})
	if err != nil || st.Status != task.Status_STOPPED {
		return nil
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil
	}
	bundle, err := s.bundleOf(id)
	if err != nil {
		return nil
	}
	return s.storage.releaseBeside(bundle, ns, id)
}

// release releases the storage of container id.
func (s *service) release(ctx context.Context, id string) error {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	bundle, err := s.bundleOf(id)
	if err != nil {
		return err
	}
	return s.storage.teardownBundle(bundle, ns, id)
}

// bundleOf finds a container's bundle: the shim's working directory is one
// bundle, and all bundles of a namespace are its siblings.
func (s *service) bundleOf(id string) (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(cwd), id), nil
}

// classifyConfigError gives a config that could not be had its errdefs
// class, keeping the cause: a bad config is an invalid argument, a file
// that cannot be read says why.
func classifyConfigError(err error) error {
	var bad *config.Error
	switch {
	case errors.As(err, &bad):
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidArgument, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w", errdefs.ErrPermissionDenied, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errdefs.IsFailedPrecondition(err), errdefs.IsInvalidArgument(err):
		return err
	}
	return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
}

// toTTRPC turns err into the task API's error: its errdefs class and its
// message on one line. The cause stays inside the shim: a cause wrapped
// beside the class would travel as a detail of its own, which ctr prints on
// lines of their own.
func toTTRPC(err error) error {
	if err == nil {
		return nil
	}
	return errgrpc.ToGRPC(&classed{class: errdefs.Resolve(err), msg: strings.ReplaceAll(err.Error(), "\n", "; ")})
}

// classed is an error of an errdefs class with a message of its own.
type classed struct {
	class error
	msg   string
}

func (e *classed) Error() string { return e.msg }
func (e *classed) Unwrap() error { return e.class }
