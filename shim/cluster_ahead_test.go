package shim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/state"
)

// shim start finds the daemon it started as its one child.
func TestOnlyChild(t *testing.T) {
	if pid := onlyChild(); pid != 0 {
		t.Fatalf("a child %d before any was started", pid)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	if pid := onlyChild(); pid != cmd.Process.Pid {
		t.Errorf("only child %d, want %d", pid, cmd.Process.Pid)
	}
	two := exec.Command("sleep", "10")
	if err := two.Start(); err != nil {
		t.Fatal(err)
	}
	defer two.Wait()
	defer two.Process.Kill()
	if pid := onlyChild(); pid != 0 {
		t.Errorf("only child %d of two", pid)
	}
}

// shim start asks the agent for its container's cluster locks ahead, for
// the daemon it started, and waits for no answer.
func TestLockAhead(t *testing.T) {
	stateDir := t.TempDir()
	cfgPath := filepath.Join(t.TempDir(), "persist.toml")
	cfg := fmt.Sprintf(`version = 1
state_dir = %q
default_class = "db"

[cluster]
etcd = ["http://127.0.0.1:2379"]
node = "node-a"

[backends.shared]
type = "loopfile"
path = %q
cluster = true

[classes.db]
mode = "immutable"
[[classes.db.volumes]]
path = "/data"
backend = "shared"
name = "{name}"
`, stateDir, t.TempDir())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "c1")
	if err := os.Mkdir(bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"annotations":{"`+AnnotationName+`":"pg"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(bundle)
	params := &bootapi.BootstrapParams{}
	if err := params.AddExtension(&runtimeoptions.Options{ConfigPath: cfgPath}); err != nil {
		t.Fatal(err)
	}
	f := startFakeAgent(t, filepath.Join(state.Dir(stateDir).Cluster(), hold.Socket))
	ahead := startLockAhead(namespaces.WithNamespace(context.Background(), "default"), params)
	daemon := exec.Command("sleep", "10") // as runc's manager starts the daemon
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer daemon.Wait()
	defer daemon.Process.Kill()
	<-ahead.done // named by the time runc's manager has started the daemon
	ahead.send()
	f.waitLines(t, 1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) != 1 {
		t.Fatalf("requests %+v", f.requests)
	}
	r := f.requests[0]
	if !r.Ahead || r.PID != daemon.Process.Pid || r.Container != "c1" || r.Namespace != "default" || r.Volume != "pg" || r.Node != "node-a" {
		t.Errorf("request %+v, want one ahead for pid %d, default/pg of c1", r, daemon.Process.Pid)
	}
}

// A config that names no cluster costs shim start nothing more than its
// read.
func TestLockAheadWithoutCluster(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "persist.toml")
	if err := os.WriteFile(cfgPath, []byte("version = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	params := &bootapi.BootstrapParams{}
	if err := params.AddExtension(&runtimeoptions.Options{ConfigPath: cfgPath}); err != nil {
		t.Fatal(err)
	}
	if l := startLockAhead(namespaces.WithNamespace(context.Background(), "default"), params); l != nil {
		t.Error("shim start names cluster locks of a config without [cluster]")
	}
}
