package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The shim starts three times per container (start, daemon, delete), for
// every user, cluster or not: the etcd client's package init alone would
// add about 1.8 ms of CPU to each, and 4.5 MB to the binary. Cluster locks
// are held by persistctl cluster hold instead (package cluster/hold).
func TestShimDoesNotLinkEtcd(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed too little to judge: %q", deps)
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "go.etcd.io/") || p == "github.com/containerd-persist/containerd-persist/cluster" {
			t.Errorf("the shim links %s: take the etcd work to persistctl cluster hold, through package cluster/hold", p)
		}
	}
}
