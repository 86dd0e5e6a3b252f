//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"github.com/containerd/errdefs"
)

// fenceFile is fence.json, beside volume.json: the fencing token of the
// last cluster-wide lock under which the volume was attached.
const fenceFile = "fence.json"

// ErrStaleToken is returned to a holder whose cluster lock is older than the
// one the volume was last attached under: it lost the lock, and must not
// mount the volume.
var ErrStaleToken = errors.New("stale fencing token")

// ClusterGuard is how Attach takes and checks the cluster-wide lock of a
// volume on a cluster backend. Its errors stop the attach.
type ClusterGuard interface {
	// Lock takes the lock, before anything of the volume is touched.
	Lock() error
	// BeforeMount is called under the host lock once the volume exists,
	// right before it is mounted: it records the lock's fencing token in
	// dir (RecordFence) and makes sure the lock is still held.
	BeforeMount(dir string) error
}

// Fence is a cluster lock's fencing token as a volume records it.
type Fence struct {
	Token     int64     `json:"token"` // the etcd revision of the lock
	Node      string    `json:"node"`
	Container string    `json:"container"`
	At        time.Time `json:"at"`
}

// ReadFence reads the fence recorded in a volume's directory; a volume never
// attached under a cluster lock has none (a zero Fence).
func ReadFence(dir string) (Fence, error) {
	var f Fence
	b, err := readNoFollow(filepath.Join(dir, fenceFile))
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("read %s: %w", filepath.Join(dir, fenceFile), err)
	}
	return f, nil
}

// RecordFence records f in the volume's directory, unless the volume was
// attached under a later lock: then the holder of f lost its lock, and the
// error says to whom. The record is written and synced before it replaces
// the old one, and the directory is synced after, so a node that crashes
// right after cannot leave a smaller token behind. Call it under the volume's
// cluster lock, before the volume is mounted.
func RecordFence(dir string, f Fence) error {
	old, err := ReadFence(dir)
	if err != nil {
		return err
	}
	if f.Token < old.Token {
		return fmt.Errorf("%w: %w: the volume was attached by node %s (container %s) at %s under a later cluster lock (%d, ours is %d): this node lost its lock, so it never mounts the volume again; create the container again",
			errdefs.ErrFailedPrecondition, ErrStaleToken, old.Node, old.Container, old.At.Format(time.RFC3339), old.Token, f.Token)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	w, err := atomicfile.New(filepath.Join(dir, fenceFile), 0o600)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		w.Cancel()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("record the fencing token: %w", err)
	}
	// The rename itself is made durable too: a crash must not bring back
	// the old, smaller token.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("record the fencing token: sync %s: %w", dir, err)
	}
	return nil
}
