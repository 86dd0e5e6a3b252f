package volumes

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// The usage of a loopfile volume that a container holds but has not
// mounted (yet, or any more) is refused as unavailable, to be asked again,
// and the volume is not mounted for it.
func TestUsageOfHeldVolumeNotMounted(t *testing.T) {
	e := newAttachEnv(t)
	id := vid("ns", "data")
	if err := e.store.Create(e.loop, id, Meta{Size: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	other := NewLocks() // the shim of a container that is starting
	if err := other.Acquire(e.loop.LockPath(id), holderB, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Release(e.loop.LockPath(id), holderB) })
	_, err := e.store.Usage(e.loop, id, holderA)
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "try again") {
		t.Errorf("Usage = %v, want Unavailable saying to try again", err)
	}
	if ops := e.m.Ops("mount"); len(ops) != 0 {
		t.Errorf("Usage mounted the held volume: %q", ops)
	}
}
