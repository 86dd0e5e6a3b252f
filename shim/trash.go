package shim

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/log"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
)

// A released disk scratch image is unlinked after the container's delete,
// not during it (see state's trash): the daemon's release moves it to the
// trash, and unlinks it in the background while containerd shuts the
// daemon down. The daemon waits for that before it exits, from a shutdown
// callback, which containerd does not wait for. `shim delete` and
// processes that would not wait unlink in place.

// trash is the daemon's background unlinking of trashed images. The
// process exits once, so there is one.
var trash trashBin

type trashBin struct {
	mu      sync.Mutex
	waited  bool            // a shutdown callback waits for the unlinks: they may be left to the background
	pending []chan struct{} // closed as each unlink ends
}

func init() {
	// Only the daemon loads plugins; its shutdown service runs the
	// callbacks before the process exits.
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "persist-trash",
		Requires: []plugin.Type{plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			ss.(shutdown.Service).RegisterCallback(func(context.Context) error {
				trash.wait()
				return nil
			})
			trash.mu.Lock()
			trash.waited = true
			trash.mu.Unlock()
			return &trash, nil
		},
	})
}

// unlinker is what state.Undoer should hand the images it moves to the
// trash of d to: nil, for unlinking in place, unless a shutdown callback
// waits for the unlinks.
func (t *trashBin) unlinker(d state.Dir) func(string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.waited {
		return nil
	}
	return func(trashed string) { t.unlinkLater(d, trashed) }
}

// unlinkLater unlinks an image in the trash of d in the background, and
// then what else the trash holds: files a crash left there.
func (t *trashBin) unlinkLater(d state.Dir, trashed string) {
	done := make(chan struct{})
	t.mu.Lock()
	t.pending = append(t.pending, done)
	t.mu.Unlock()
	go func() {
		defer close(done)
		if err := os.Remove(trashed); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.L.WithError(err).Warn("unlink a released scratch image; persistctl gc removes it")
		}
		if _, err := d.EmptyTrash(); err != nil {
			log.L.WithError(err).Warn("empty the trash; persistctl gc does it")
		}
	}()
}

// wait waits for the unlinks begun so far.
func (t *trashBin) wait() {
	t.mu.Lock()
	pending := t.pending
	t.mu.Unlock()
	for _, done := range pending {
		<-done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var still []chan struct{}
	for _, done := range t.pending {
		select {
		case <-done:
		default:
			still = append(still, done)
		}
	}
	t.pending = still
}

// reserveEmptyingTrash is reserve, which reserves the space of a disk
// scratch image in state dir d, tried once more after the trash is emptied
// and the spare scratch filesystems drained when it finds its filesystem
// full: images released a moment ago hold their space until they are
// unlinked, spares while they are kept, and a size is a promise.
func reserveEmptyingTrash(reserve func(string, uint64) error, d state.Dir, m host.Mounter) func(string, uint64) error {
	return func(image string, size uint64) error {
		err := reserve(image, size)
		if !errors.Is(err, syscall.ENOSPC) {
			return err
		}
		derr := spares(string(d), m).Drain()
		trash.wait()
		if _, terr := d.EmptyTrash(); terr != nil || derr != nil {
			return errors.Join(err, terr, derr)
		}
		return reserve(image, size)
	}
}
