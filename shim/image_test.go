package shim

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// fakeContainerd serves the two calls imageOf makes with containerd's
// generated API types, so the messages imageOf encodes by hand meet the
// real ones on the wire.
type fakeContainerd struct {
	container *containersapi.Container
	parent    string
	gotStat   *snapshotsapi.StatSnapshotRequest
}

type fakeContainers struct {
	containersapi.UnimplementedContainersServer
	*fakeContainerd
}

type fakeSnapshots struct {
	snapshotsapi.UnimplementedSnapshotsServer
	*fakeContainerd
}

func (f fakeContainers) Get(ctx context.Context, r *containersapi.GetContainerRequest) (*containersapi.GetContainerResponse, error) {
	if ns, _ := namespaces.Namespace(ctx); ns != "k8s.io" || r.ID != f.container.ID {
		return nil, status.Errorf(codes.NotFound, "container %q in namespace %q not found", r.ID, ns)
	}
	return &containersapi.GetContainerResponse{Container: f.container}, nil
}

func (f fakeSnapshots) Stat(ctx context.Context, r *snapshotsapi.StatSnapshotRequest) (*snapshotsapi.StatSnapshotResponse, error) {
	f.gotStat = r
	return &snapshotsapi.StatSnapshotResponse{Info: &snapshotsapi.Info{
		Name: r.Key, Parent: f.parent, Kind: snapshotsapi.Kind_ACTIVE,
		Labels: map[string]string{"containerd.io/gc.root": "x"}, CreatedAt: timestamppb.Now(),
	}}, nil
}

func serveFake(t *testing.T, f *fakeContainerd) string {
	t.Helper()
	address := filepath.Join(t.TempDir(), "containerd.sock")
	l, err := net.Listen("unix", address)
	mustT(t, err)
	s := grpc.NewServer()
	containersapi.RegisterContainersServer(s, fakeContainers{fakeContainerd: f})
	snapshotsapi.RegisterSnapshotsServer(s, fakeSnapshots{fakeContainerd: f})
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return address
}

func TestImageOf(t *testing.T) {
	spec, err := anypb.New(timestamppb.Now()) // any message: imageOf skips it
	mustT(t, err)
	f := &fakeContainerd{
		container: &containersapi.Container{
			ID:          "db-0",
			Labels:      map[string]string{"a": "b"},
			Image:       "docker.io/library/postgres:17",
			Runtime:     &containersapi.Container_Runtime{Name: "io.containerd.persist.v1"},
			Spec:        spec,
			Snapshotter: "overlayfs",
			SnapshotKey: "db-0-key",
			CreatedAt:   timestamppb.Now(),
		},
		parent: "sha256:chain",
	}
	address := serveFake(t, f)
	img, err := imageOf(context.Background(), address, "k8s.io", "db-0")
	if err != nil {
		t.Fatal(err)
	}
	if want := (volumes.Image{Name: "docker.io/library/postgres:17", ChainID: "sha256:chain"}); img != want {
		t.Errorf("imageOf = %+v, want %+v", img, want)
	}
	if f.gotStat.Snapshotter != "overlayfs" || f.gotStat.Key != "db-0-key" {
		t.Errorf("asked for snapshot %+v, want the container's", f.gotStat)
	}

	if _, err := imageOf(context.Background(), address, "k8s.io", "other"); status.Code(err) != codes.NotFound {
		t.Errorf("imageOf of a missing container = %v, want containerd's NotFound", err)
	}
	f.container.SnapshotKey = ""
	if _, err := imageOf(context.Background(), address, "k8s.io", "db-0"); err == nil {
		t.Error("a container with no snapshot was taken")
	}
}

// TestWireMessages: the hand-encoded requests are what the generated types
// decode, and field reads what they encode, whatever else a message holds.
func TestWireMessages(t *testing.T) {
	var get containersapi.GetContainerRequest
	mustT(t, proto.Unmarshal(appendString(nil, 1, "c1"), &get))
	var stat snapshotsapi.StatSnapshotRequest
	mustT(t, proto.Unmarshal(appendString(appendString(nil, 1, "overlayfs"), 2, "k"), &stat))
	if get.ID != "c1" || stat.Snapshotter != "overlayfs" || stat.Key != "k" {
		t.Errorf("requests decode as %v and %v", &get, &stat)
	}

	b, err := proto.Marshal(&snapshotsapi.StatSnapshotResponse{Info: &snapshotsapi.Info{Name: "n", Parent: "p", Kind: snapshotsapi.Kind_COMMITTED, Labels: map[string]string{"x": "y"}}})
	mustT(t, err)
	if got := string(field(field(b, 1), 2)); got != "p" {
		t.Errorf("parent read %q, want p", got)
	}
	if got := field(field(b, 1), 9); got != nil {
		t.Errorf("a missing field read %q", got)
	}
	for n := range len(b) { // cut short anywhere: no panic, no field past the cut
		field(field(b[:n], 1), 2)
	}
	if got := field([]byte{0xff, 0xff, 0xff}, 1); got != nil {
		t.Errorf("garbage read %q", got)
	}
}
