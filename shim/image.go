package shim

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// imageOf asks containerd which image a container was made from and which
// layers are under its root: the parent of its snapshot is named by the
// chain ID of the image's layers. Only machine containers whose layers
// changed ask (see volumes.AttachOptions.Lower).
//
// The two calls' messages are encoded and decoded here, field by field from
// containerd's API protos, rather than with containerd's generated API
// packages: their package init registers their descriptors in every exec of
// the shim, three per container, and allocates enough that `shim start`
// and `shim delete` collected garbage on the way. They go over wireConn,
// not grpc's client (see there).
func imageOf(ctx context.Context, address, namespace, id string) (volumes.Image, error) {
	if address == "" {
		return volumes.Image{}, fmt.Errorf("containerd's address is unknown")
	}
	conn, err := dialWire(ctx, address, namespace)
	if err != nil {
		return volumes.Image{}, fmt.Errorf("connect to containerd: %w", err)
	}
	defer conn.Close()
	call := conn.call

	// containerd.services.containers.v1.Containers/Get: GetContainerRequest
	// {string id = 1} returns GetContainerResponse {Container container = 1},
	// Container {string image = 3; string snapshotter = 6; string
	// snapshot_key = 7}.
	resp, err := call("/containerd.services.containers.v1.Containers/Get", appendString(nil, 1, id))
	if err != nil {
		return volumes.Image{}, fmt.Errorf("ask containerd for container %s: %w", id, err)
	}
	c := field(resp, 1)
	image, snapshotter, key := string(field(c, 3)), string(field(c, 6)), string(field(c, 7))
	if key == "" {
		return volumes.Image{}, fmt.Errorf("container %s has no snapshot: machine mode needs a root made by a snapshotter", id)
	}

	// containerd.services.snapshots.v1.Snapshots/Stat: StatSnapshotRequest
	// {string snapshotter = 1; string key = 2} returns StatSnapshotResponse
	// {Info info = 1}, Info {string parent = 2}.
	resp, err = call("/containerd.services.snapshots.v1.Snapshots/Stat", appendString(appendString(nil, 1, snapshotter), 2, key))
	if err != nil {
		return volumes.Image{}, fmt.Errorf("ask containerd for the snapshot of container %s: %w", id, err)
	}
	return volumes.Image{Name: image, ChainID: string(field(field(resp, 1), 2))}, nil
}

// appendString appends string field num to a message.
func appendString(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// field returns length-delimited field num (a string or a message) of
// message b; nil when b has none. A message that does not parse is read as
// far as it parses.
func field(b []byte, num protowire.Number) []byte {
	var out []byte
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			break
		}
		b = b[l:]
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			break
		}
		if n == num && typ == protowire.BytesType {
			out, _ = protowire.ConsumeBytes(b[:l])
		}
		b = b[l:]
	}
	return out
}
