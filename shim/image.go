package shim

import (
	"context"
	"fmt"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// imageOf asks containerd which image a container was made from and which
// layers are under its root: the parent of its snapshot is named by the
// chain ID of the image's layers. Only machine containers ask, once each.
func imageOf(ctx context.Context, address, namespace, id string) (volumes.Image, error) {
	if address == "" {
		return volumes.Image{}, fmt.Errorf("containerd's address is unknown")
	}
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return volumes.Image{}, err
	}
	defer conn.Close()
	ctx = namespaces.WithNamespace(ctx, namespace)
	got, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return volumes.Image{}, fmt.Errorf("ask containerd for container %s: %w", id, err)
	}
	c := got.GetContainer()
	if c.GetSnapshotKey() == "" {
		return volumes.Image{}, fmt.Errorf("container %s has no snapshot: machine mode needs a root made by a snapshotter", id)
	}
	snap, err := snapshotsapi.NewSnapshotsClient(conn).Stat(ctx, &snapshotsapi.StatSnapshotRequest{
		Snapshotter: c.GetSnapshotter(),
		Key:         c.GetSnapshotKey(),
	})
	if err != nil {
		return volumes.Image{}, fmt.Errorf("ask containerd for the snapshot of container %s: %w", id, err)
	}
	return volumes.Image{Name: c.GetImage(), ChainID: snap.GetInfo().GetParent()}, nil
}
