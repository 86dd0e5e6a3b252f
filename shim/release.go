package shim

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// A stopped task's storage is released while runc deletes the task, where
// that is safe, rather than after: runc's delete (runc delete, the root's
// unmount) takes milliseconds that the release need not wait for.
//
// It is safe when the container had a PID namespace of its own: the
// kernel ends every process in it before its init is reaped, so once the
// task has stopped no process of the container uses a scratch area or a
// volume any more, whatever runc still has to do. Without one, processes
// the container left may live until runc's delete ends them, and the
// release waits for it, as it does for a machine root, whose volume holds
// the upper layer of the root that runc's delete unmounts: its volume may
// neither be unmounted nor handed to the next container before that. Its
// volumes are synced meanwhile, so that the release's own syncfs, which
// stays, finds little left to write.

// releaseMode says how much of a container's release may run beside runc's
// delete.
type releaseMode int

const (
	releaseAfterDelete  releaseMode = iota // all of it after runc's delete
	syncBesideDelete                       // the syncfs of its volumes beside it, the release after
	releaseBesideDelete                    // all of it beside it
)

// releaseModeOf is the release mode of a container of the given spec,
// whose storage holds its root's upper layer (machine mode) or not.
func releaseModeOf(spec *specs.Spec, upperInVolume bool) releaseMode {
	switch {
	case !ownPIDNamespace(spec):
		return releaseAfterDelete
	case upperInVolume:
		return syncBesideDelete
	}
	return releaseBesideDelete
}

// ownPIDNamespace says whether the container gets a PID namespace of its
// own, not the host's or another container's.
func ownPIDNamespace(spec *specs.Spec) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path == ""
		}
	}
	return false
}

// releaseBeside starts what of the release of the container whose bundle
// is given may run beside runc's delete of its stopped task. wait waits for
// it and says whether it released the storage whole; if not, the caller
// releases it after runc's delete.
func (s *storage) releaseBeside(bundle, ns, id string) (wait func() (bool, error)) {
	b, err := os.ReadFile(filepath.Join(bundle, journalPointer))
	if err != nil {
		return nil
	}
	path := strings.TrimSpace(string(b))
	s.mu.Lock()
	l := s.live[path]
	s.mu.Unlock()
	if l == nil || l.mode == releaseAfterDelete {
		return nil
	}
	done := make(chan error, 1)
	if l.mode == releaseBesideDelete {
		go func() { done <- s.teardown(path, ns, id) }()
		return func() (bool, error) { return true, <-done }
	}
	go func() {
		var errs []error
		for _, root := range l.volumeRoots {
			if err := volumes.Syncfs(root); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		done <- errors.Join(errs...)
	}()
	// The release that follows syncs again, and says so if that fails.
	return func() (bool, error) { <-done; return false, nil }
}
