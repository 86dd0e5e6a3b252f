// containerd-shim-persist-fp-v1 is a test build of the shim (runtime type
// io.containerd.persist-fp.v1) that fails or dies at a chosen step of a
// container's storage setup or cleanup, named by the container's
// annotation persist.containerd.io/failpoint. The integration tests use it
// to prove that every half-done setup and cleanup is undone; like
// containerd's containerd-shim-runc-fp-v1, it is never installed.
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	persist "github.com/containerd-persist/containerd-persist/shim"
)

func main() {
	persist.Register(persist.WithHooks(failpointOf))
	shim.RunShim(context.Background(), persist.NewManager())
}
