package shim

import (
	"testing"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// A volume on a host-local backend, or any volume of a config without
// [cluster], gets no cluster guard: nothing dials etcd for it.
func TestClusterGuardOnlyForClusterBackends(t *testing.T) {
	id, err := volumes.NewID("default", "", "db")
	if err != nil {
		t.Fatal(err)
	}
	withCluster := &config.Config{Cluster: &config.Cluster{Etcd: []string{"http://127.0.0.1:2379"}, Node: "a"}}
	for _, tc := range []struct {
		name    string
		cfg     *config.Config
		cluster bool
		want    bool
	}{
		{"host-local backend", withCluster, false, false},
		{"cluster backend", withCluster, true, true},
		{"no [cluster]", &config.Config{}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &setupRun{cfg: tc.cfg, c: &container{namespace: "default", id: "c"}, owner: &storage{}, store: volumes.Open(volumes.Roots{Mounts: t.TempDir()}, nil, nil)}
			g := r.clusterGuard(&config.Backend{Name: "b", Type: config.BackendLoopfile, Cluster: tc.cluster}, id)
			if (g != nil) != tc.want {
				t.Errorf("guard %v, want one: %v", g, tc.want)
			}
			if r.owner.cluster.held != nil {
				t.Error("started a holder while choosing a guard")
			}
		})
	}
}
