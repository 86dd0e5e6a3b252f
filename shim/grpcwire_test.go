package shim

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// A reply larger than HTTP/2's default windows and frames arrives whole,
// and later calls on the connection get their own replies.
func TestWireConnLargeReply(t *testing.T) {
	big := strings.Repeat("x", 300<<10)
	f := &fakeContainerd{
		container: &containersapi.Container{ID: "c", Image: "img", Labels: map[string]string{"big": big},
			Snapshotter: "overlayfs", SnapshotKey: "k", CreatedAt: timestamppb.Now()},
		parent: "sha256:chain",
	}
	address := serveFake(t, f)
	c, err := dialWire(context.Background(), address, "k8s.io")
	mustT(t, err)
	defer c.Close()
	for range 3 {
		resp, err := c.call("/containerd.services.containers.v1.Containers/Get", appendString(nil, 1, "c"))
		mustT(t, err)
		if len(resp) < len(big) || string(field(field(resp, 1), 3)) != "img" {
			t.Fatalf("reply of %d bytes, image %q", len(resp), field(field(resp, 1), 3))
		}
	}
}

// A containerd that never answers does not hold the caller past its
// context.
func TestWireConnContext(t *testing.T) {
	address := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", address)
	mustT(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := dialWire(ctx, address, "default")
	mustT(t, err)
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, err := c.call("/containerd.services.containers.v1.Containers/Get", nil)
		done <- err
	}()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a call that got no reply succeeded")
	}
}
