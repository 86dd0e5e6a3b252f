package shim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcmanager "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/manager"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-persist/containerd-persist/host"
)

// RuntimeName is the runtime type containerd knows this shim by.
const RuntimeName = "io.containerd.persist.v1"

// NewManager returns the shim manager: runc's, with cleanup of the storage
// added to Stop and our options kept away from runc's Info.
func NewManager() shim.Shim {
	return manager{Shim: runcmanager.NewShimManager(RuntimeName)}
}

type manager struct {
	shim.Shim
}

// Stop runs for `shim delete`: after every shim exit, and when containerd
// cleans up after a shim that was killed. runc's Stop kills the container and
// unmounts its root; then the storage setup is undone from its journal.
func (m manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	gcHold.hold() // for the life of this short process
	status, err := m.Shim.Stop(ctx, id)
	if err != nil {
		// The container may still run: its volumes stay held, and the
		// journal is left for the next try or persistctl gc.
		return status, err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return status, err
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return status, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	if err := newStorage("", host.Linux{}).teardownBundle(bundle, ns, id); err != nil {
		return status, fmt.Errorf("release storage of container %s: %w", id, err)
	}
	return status, nil
}

// Start runs for `shim start`: it starts the daemon and tells containerd
// its address.
func (m manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	gcHold.hold() // for the life of this short process
	passPreload(params)
	ahead := startLockAhead(ctx, params)
	res, err := m.Shim.Start(ctx, params)
	if err == nil {
		ahead.send()
	}
	return res, err
}

// Info reports runc's runtime info. containerd hands it the runtime's options
// (often none): runc's own are passed on, ours are not runc's business.
func (m manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	data, err := io.ReadAll(optionsR)
	if err != nil {
		return nil, err
	}
	var runcOptions []byte
	if len(data) > 0 {
		var a anypb.Any
		if err := proto.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("decode runtime options: %w", err)
		}
		opts, err := splitOptions(&a)
		if err != nil {
			return nil, err
		}
		if opts.runc != nil {
			if runcOptions, err = proto.Marshal(opts.runc); err != nil {
				return nil, err
			}
		}
	}
	return m.Shim.Info(ctx, bytes.NewReader(runcOptions))
}
