// containerd-shim-persist-v1 is the containerd runtime v2 shim of
// containerd-persist (runtime type io.containerd.persist.v1).
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	persist "github.com/containerd-persist/containerd-persist/shim"
)

func main() {
	persist.Register()
	shim.RunShim(context.Background(), persist.NewManager())
}
