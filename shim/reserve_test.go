package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd-persist/containerd-persist/state"
)

// A disk scratch's image is made sparse and mounted; its space is reserved
// in the background, and setup's caller waits for that before the
// container may run. A reservation that fails is the create's error, and
// the release that follows waits for it before it removes the image.
func TestStorageSetupReservesDiskScratchLater(t *testing.T) {
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "reserved", true: "reservation fails"}[fail]
		t.Run(name, func(t *testing.T) {
			e := newSetupEnv(t)
			cfg := e.config(t, twoScratch)
			c := e.container("c1", nil)
			image := filepath.Join(state.Dir(e.state).Scratch("ns", "c1"), "1", "fs.img")
			full := errors.New("no space left")
			release := make(chan struct{})
			var asked []string
			e.storage.reserve = func(path string, size uint64) error {
				<-release // until setup has returned
				asked = append(asked, path)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("reserve %s: %v, want the image there", path, err)
				}
				if size != 2<<20 {
					t.Errorf("reserve %s of %d bytes, want 2 MiB", path, size)
				}
				if fail {
					return full
				}
				return nil
			}
			class, err := resolveClass(cfg, c.spec.Annotations)
			if err != nil {
				t.Fatal(err)
			}
			e.host.Journal = state.Dir(cfg.StateDir).Journal(c.namespace, c.id)
			reserved, err := e.storage.setup(context.Background(), &setupRequest{container: c, cfg: cfg, class: class})
			if err != nil {
				t.Fatal(err)
			}
			for _, call := range e.host.Calls {
				if call.Op == "makeimage" && !call.Image.Sparse {
					t.Errorf("image %s made reserved on the start path, want sparse", call.Target)
				}
			}
			close(release)
			if err := reserved(); fail != errors.Is(err, full) {
				t.Errorf("reserved() = %v, want the reservation's error: %v", err, fail)
			}
			if len(asked) != 1 || asked[0] != image {
				t.Errorf("reserved %q, want %s", asked, image)
			}
			if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
				t.Fatal(err)
			}
			e.assertReleased(t, "c1")
		})
	}
}
