//go:build linux

package volumes

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// An autoclear loop device that nothing has mounted is detached by the
// kernel a moment after its last close (from a work queue since Linux
// 5.19): checkImageFree waits for it instead of calling the image held. One
// without autoclear is a leftover, refused at once.
func TestCheckImageFreeWaitsForDetachingLoop(t *testing.T) {
	testenv.NeedRoot(t)
	for _, autoclear := range []bool{true, false} {
		name := map[bool]string{true: "autoclear", false: "leftover"}[autoclear]
		t.Run(name, func(t *testing.T) {
			image := filepath.Join(t.TempDir(), "disk.img")
			if err := os.WriteFile(image, make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			loop, err := mount.SetupLoop(image, mount.LoopParams{Autoclear: autoclear})
			if err != nil {
				t.Fatal(err)
			}
			dev := loop.Name()
			t.Cleanup(func() {
				loop.Close()
				if !autoclear {
					if err := mount.DetachLoopDevice(dev); err != nil {
						t.Error(err)
					}
				}
			})
			// The device stays attached while it is open; closing it
			// stands for the last unmount. It is closed a little after the
			// check starts, so that the check finds it attached (the
			// pause orders the two; nothing here is timed).
			checked := make(chan error, 1)
			go func() { checked <- checkImageFree(image) }()
			if autoclear {
				time.Sleep(200 * time.Millisecond)
				loop.Close()
				if err := <-checked; err != nil {
					t.Fatalf("checkImageFree of an image whose autoclear loop device is going: %v", err)
				}
				return
			}
			if err := <-checked; !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("checkImageFree of an image attached to %s = %v, want FailedPrecondition", dev, err)
			}
		})
	}
}
