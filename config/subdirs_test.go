package config_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Every path the shim and the volume store keep in the state dir is inside
// one of config.StateSubdirs, which backends are kept out of.
func TestStateSubdirsCoverStatePaths(t *testing.T) {
	const root = "/state"
	id, err := volumes.NewID("ns", "", "v")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		state.Dir(root).Journal("ns", "c"),
		state.Dir(root).Scratch("ns", "c"),
		state.Dir(root).Templates(),
		volumes.Open(root, host.Linux{}, volumes.NewLocks()).MountPath(id),
	} {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(rel, "/"); !slices.Contains(config.StateSubdirs, first) {
			t.Errorf("%s is in state dir directory %q, which config.StateSubdirs lacks", p, first)
		}
	}
}
