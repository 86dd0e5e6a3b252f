package shim

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/state"
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

// fakeAgent serves cluster locks on socket, in this process: each
// connection gets a token, and its lines are recorded.
type fakeAgent struct {
	mu       sync.Mutex
	conns    int
	lines    []string // "<container> <line>", the request being "<container> lock"
	requests []hold.Request
}

func startFakeAgent(t *testing.T, socket string) *fakeAgent {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeAgent{}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			token := int64(f.conns)
			f.mu.Unlock()
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				var req hold.Request
				for sc.Scan() {
					line := sc.Text()
					m := hold.Message{Alive: line == "alive", Released: line == "release"}
					if req.Container == "" {
						json.Unmarshal(sc.Bytes(), &req)
						line, m = "lock", hold.Message{Token: token}
						f.mu.Lock()
						f.requests = append(f.requests, req)
						f.mu.Unlock()
					}
					f.mu.Lock()
					f.lines = append(f.lines, req.Container+" "+line)
					f.mu.Unlock()
					b, _ := json.Marshal(m)
					conn.Write(append(b, '\n'))
				}
			}()
		}
	}()
	return f
}

// waitLines waits until the agent has been sent n lines, and returns them.
func (f *fakeAgent) waitLines(t *testing.T, n int) []string {
	t.Helper()
	for range 500 {
		f.mu.Lock()
		lines := slices.Clone(f.lines)
		f.mu.Unlock()
		if len(lines) >= n {
			return lines
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Fatalf("the agent was sent %q, want %d lines", f.lines, n)
	return nil
}

// The locks of a container's cluster volumes are taken before its Create:
// its attach takes that lock, and asks for no other. One that no Create
// takes is released.
func TestClusterLocksTakenAhead(t *testing.T) {
	stateDir := t.TempDir()
	cfg := &config.Config{
		StateDir: stateDir,
		Cluster:  &config.Cluster{Etcd: []string{"http://127.0.0.1:2379"}, Node: "a", LeaseTTL: config.Duration(15 * time.Second)},
		Backends: map[string]*config.Backend{
			"shared": {Name: "shared", Type: config.BackendLoopfile, Path: t.TempDir(), Cluster: true},
			"local":  {Name: "local", Type: config.BackendLoopfile, Path: t.TempDir()},
		},
	}
	class := &config.Class{Name: "db", Volumes: []config.Volume{
		{Path: "/data", Backend: "shared", Name: "{name}"},
		{Path: "/cache", Backend: "local", Name: "{name}-cache"},
	}}
	f := startFakeAgent(t, filepath.Join(state.Dir(stateDir).Cluster(), hold.Socket))
	s := newStorage("", nil)
	spec := &specs.Spec{Annotations: map[string]string{AnnotationName: "pg"}}
	c := &container{namespace: "default", id: "c1", bundle: t.TempDir(), spec: spec}
	s.startEarlyLocks(c, cfg, class)
	f.waitLines(t, 1) // the shared volume only

	id, err := volumes.NewID("default", "", "pg")
	if err != nil {
		t.Fatal(err)
	}
	r := &setupRun{cfg: cfg, c: c, owner: s, jpath: state.Dir(stateDir).Journal("default", "c1"), store: volumes.Open(state.Dir(stateDir).Volumes(), nil, nil)}
	g := r.clusterGuard(cfg.Backends["shared"], id)
	if err := g.Lock(); err != nil {
		t.Fatal(err)
	}
	// The agent recorded the token already: it is not written again.
	dir := t.TempDir()
	if err := volumes.RecordFence(dir, volumes.Fence{Token: 1, Node: "a"}); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(filepath.Join(dir, "fence.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.BeforeMount(dir); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(filepath.Join(dir, "fence.json")); err != nil || !os.SameFile(before, after) {
		t.Errorf("the token the agent recorded was written again: %v", err)
	}
	if got, want := f.waitLines(t, 2), []string{"c1 lock", "c1 alive"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
	f.mu.Lock()
	if f.conns != 1 {
		t.Errorf("%d locks asked for, want the one taken ahead", f.conns)
	}
	f.mu.Unlock()
	if s.cluster.took(r.jpath) <= 0 {
		t.Error("the lock's time on the start's path is not recorded")
	}
	if err := s.cluster.unlockAfter(r.jpath, nil); err != nil {
		t.Fatal(err)
	}
	f.waitLines(t, 3)

	// Taken ahead for a Create that fails before its setup.
	c2 := &container{namespace: "default", id: "c2", bundle: t.TempDir(), spec: spec}
	s.startEarlyLocks(c2, cfg, class)
	f.waitLines(t, 4)
	s.cluster.dropEarly()
	if got, want := f.waitLines(t, 5), []string{"c1 lock", "c1 alive", "c1 release", "c2 lock", "c2 release"}; !slices.Equal(got, want) {
		t.Errorf("lines %q, want %q", got, want)
	}
}
