package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd-persist/containerd-persist/cluster"
	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/internal/etcdtest"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// clusterResult is what the cluster lock adds to a container with a
// loopfile volume, with etcd on loopback.
type clusterResult struct {
	// NodeDisk has etcd's data on the filesystem of the node's state dir
	// and backends; OwnDevice on a device of its own (a tmpfs standing in
	// for the dedicated disk that etcd's operators give it).
	NodeDisk  clusterPairs `json:"etcd_on_node_disk"`
	OwnDevice clusterPairs `json:"etcd_on_own_device"`
	// Lock is the cluster lock's work, timed as the shim does it: have
	// the node's agent (persistctl cluster agent, already running) lock,
	// on a lease it holds ready; record the fencing token; ask the agent
	// whether the lease is alive. The shim starts this before Create
	// arrives, so that only what is left of it when Create's attach needs
	// the lock is on the start's path. Release is the agent's unlock when
	// the container is deleted, until it answers.
	Lock    series `json:"lock_ms"`
	Release series `json:"release_ms"`
	// AgentStart is the first lock of a node, which starts the agent.
	AgentStart float64 `json:"agent_start_ms"`
	// Etcd is what a lock costs without an agent, in this process: dial,
	// grant, lock, fencing token.
	Etcd series `json:"etcd_ms"`
}

// clusterPairs are `ctr run --rm` of the same class on a loopfile backend,
// without and with cluster = true, paired by round.
type clusterPairs struct {
	Local   series `json:"local_ms"`
	Cluster series `json:"cluster_ms"`
	// Added is the median of the rounds' differences, and AddedCI its 95%
	// interval.
	Added   float64    `json:"added_ms"`
	AddedCI [2]float64 `json:"added_ms_ci95"`
	// OnPath is what the shim recorded of the cluster locks' own time on
	// the start's path: its wait for the agent's lock, the fencing token,
	// the alive question. SetupAdded and TeardownAdded are the rounds'
	// differences in the shim's own record of each container's storage
	// setup and teardown (persistctl metrics).
	OnPath          float64    `json:"on_path_ms"`
	OnPathCI        [2]float64 `json:"on_path_ms_ci95"`
	SetupAdded      float64    `json:"setup_added_ms"`
	SetupAddedCI    [2]float64 `json:"setup_added_ms_ci95"`
	TeardownAdded   float64    `json:"teardown_added_ms"`
	TeardownAddedCI [2]float64 `json:"teardown_added_ms_ci95"`
}

// clusterConfig is the shim's config for the cluster bench: one class on a
// host-local loopfile backend, one on a cluster backend.
func clusterConfig(dir, endpoint string) string {
	return fmt.Sprintf(`version = 1
state_dir = %q
default_class = "local"

[cluster]
etcd = [%q]
node = "bench"
lease_ttl = "15s"

[backends.local]
type = "loopfile"
path = %q
default_size = "16MiB"

[backends.shared]
type = "loopfile"
path = %q
default_size = "16MiB"
cluster = true

[classes.local]
mode = "immutable"
selectable = true
[[classes.local.volumes]]
path = "/data"
backend = "local"
name = "{name}"

[classes.cluster]
mode = "immutable"
selectable = true
[[classes.cluster.volumes]]
path = "/data"
backend = "shared"
name = "{name}"
`, filepath.Join(dir, "state"), endpoint, filepath.Join(dir, "local"), filepath.Join(dir, "shared"))
}

func benchCluster(ctx context.Context, e *env, r *results) error {
	dir := filepath.Join(e.dir, "cluster")
	// The shim starts persistctl beside it as the node's cluster agent.
	if err := copyExecutable(filepath.Join(e.o.Bin, "persistctl"), filepath.Join(e.shims, "persistctl")); err != nil {
		return err
	}
	own, err := os.MkdirTemp("/dev/shm", "persist-bench-etcd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(own)
	res := &clusterResult{}
	defer hold.StopAgent(filepath.Join(dir, "agent"))
	// The lock's own work is timed with etcd's data on the node's disk.
	cycles := func(endpoint string) (err error) {
		if res.Lock, res.Release, res.AgentStart, err = lockCycles(filepath.Join(e.o.Bin, "persistctl"), endpoint, dir, e.o.Runs); err != nil {
			return err
		}
		res.Etcd, err = etcdCycles(ctx, endpoint, dir, e.o.Runs)
		return err
	}
	if err := clusterPairsOf(ctx, e, filepath.Join(dir, "node-disk"), filepath.Join(dir, "node-disk", "etcd"), &res.NodeDisk, cycles); err != nil {
		return err
	}
	if err := clusterPairsOf(ctx, e, filepath.Join(dir, "own-device"), own, &res.OwnDevice, nil); err != nil {
		return err
	}
	r.Cluster = res
	return nil
}

// clusterPairsOf runs the paired rounds in dir, with etcd's data in
// etcdDir, then calls then, if any, with etcd's endpoint.
func clusterPairsOf(ctx context.Context, e *env, dir, etcdDir string, res *clusterPairs, then func(endpoint string) error) error {
	for _, d := range []string{"local", "shared"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	srv, err := etcdtest.New(etcdDir)
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Stop()
	defer hold.StopAgent(filepath.Join(dir, "state", "cluster"))
	cfg := filepath.Join(dir, "persist.toml")
	if err := os.WriteFile(cfg, []byte(clusterConfig(dir, srv.Endpoint)), 0o600); err != nil {
		return err
	}
	run := func(class string, i int) (float64, error) {
		id := fmt.Sprintf("cluster-%s-%d", class, i)
		cmd := e.ctr(ctx, "run", "--rm", "--runtime", persistRuntime, "--runtime-config-path", cfg,
			"--annotation", "persist.containerd.io/class="+class, "--annotation", "persist.containerd.io/name=bench-"+class,
			imageName, id, "true")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("ctr run %s: %v: %s", id, err, out)
		}
		return float64(d.Microseconds()) / 1000, nil
	}
	var local, clustered, added []float64
	for i := range e.o.Warmup + e.o.Runs {
		// Each round runs both, in turns first: the machine's drift
		// falls on both alike.
		order := []string{"local", "cluster"}
		if i%2 == 1 {
			order = []string{"cluster", "local"}
		}
		ms := map[string]float64{}
		for _, class := range order {
			if ms[class], err = run(class, i); err != nil {
				return err
			}
		}
		if i < e.o.Warmup {
			continue // the volumes are made in the first
		}
		local, clustered = append(local, ms["local"]), append(clustered, ms["cluster"])
		added = append(added, ms["cluster"]-ms["local"])
	}
	res.Local, res.Cluster = newSeries(local), newSeries(clustered)
	res.Added, res.AddedCI = medianCI(added)
	if err := res.shimAdded(filepath.Join(dir, "state"), e.o.Warmup); err != nil {
		return err
	}
	if then != nil {
		return then(srv.Endpoint)
	}
	return nil
}

// shimAdded reads the shim's records of the rounds' setups and teardowns,
// and pairs them by round as the start-to-exit times are.
func (res *clusterPairs) shimAdded(stateDir string, warmup int) error {
	records, err := timings.Read(stateDir)
	if err != nil {
		return err
	}
	ms := map[string]float64{} // by op and container: the first record of each
	onPath := map[string]float64{}
	for _, r := range records {
		if k := r.Op + " " + r.Container; ms[k] == 0 {
			ms[k] = r.Seconds * 1000
			if r.Op == timings.Setup {
				onPath[r.Container] = r.Cluster * 1000
			}
		}
	}
	var setup, teardown, path []float64
	for i := warmup; ; i++ {
		l, c := fmt.Sprintf("cluster-local-%d", i), fmt.Sprintf("cluster-cluster-%d", i)
		ls, lok := ms[timings.Setup+" "+l]
		cs, cok := ms[timings.Setup+" "+c]
		if !lok || !cok {
			break
		}
		setup = append(setup, cs-ls)
		path = append(path, onPath[c])
		teardown = append(teardown, ms[timings.Teardown+" "+c]-ms[timings.Teardown+" "+l])
	}
	res.SetupAdded, res.SetupAddedCI = medianCI(setup)
	res.OnPath, res.OnPathCI = medianCI(path)
	res.TeardownAdded, res.TeardownAddedCI = medianCI(teardown)
	return nil
}

// lockCycles times what a shim does for the cluster lock of one volume:
// have the agent lock, record the fencing token and ask whether the lease
// is alive; at delete, release. The first cycle, which starts the agent,
// is timed apart.
func lockCycles(persistctl, endpoint, dir string, n int) (lock, release series, agentStart float64, err error) {
	vol := filepath.Join(dir, "cycle")
	if err := os.MkdirAll(vol, 0o700); err != nil {
		return lock, release, 0, err
	}
	socket := filepath.Join(dir, "agent", hold.Socket)
	var locks, releases []float64
	for i := range n + 1 {
		req := hold.Request{
			Endpoints: []string{endpoint}, TTL: 15 * time.Second,
			Holder: hold.Holder{Node: "bench", Namespace: "bench", Volume: "cycle", Backend: "shared", Container: fmt.Sprint(i), PID: os.Getpid(), Since: time.Now()},
			Bundle: filepath.Join(dir, "no-bundle"), Mount: filepath.Join(dir, "no-mount"),
		}
		start := time.Now()
		p, err := hold.Start(persistctl, socket, req, nil)
		if err != nil {
			return lock, release, 0, err
		}
		err = volumes.RecordFence(vol, volumes.Fence{Token: p.Token, Node: "bench"})
		if err == nil {
			err = p.Alive()
		}
		locked := time.Now()
		err = errors.Join(err, p.Release())
		done := time.Now()
		if err != nil {
			return lock, release, 0, err
		}
		if i == 0 {
			agentStart = float64(locked.Sub(start).Microseconds()) / 1000
			continue
		}
		locks = append(locks, float64(locked.Sub(start).Microseconds())/1000)
		releases = append(releases, float64(done.Sub(locked).Microseconds())/1000)
	}
	return newSeries(locks), newSeries(releases), agentStart, nil
}

// etcdCycles times the etcd work of a lock alone, in this process: dial,
// grant, lock and record the fencing token.
func etcdCycles(ctx context.Context, endpoint, dir string, n int) (series, error) {
	vol := filepath.Join(dir, "cycle")
	var times []float64
	for i := range n {
		start := time.Now()
		c, err := cluster.Dial(cluster.Options{Endpoints: []string{endpoint}, Node: "bench", TTL: 15 * time.Second})
		if err != nil {
			return series{}, err
		}
		s, err := c.Grant(ctx, nil)
		if err == nil {
			var l *cluster.Lock
			if l, err = s.Lock(ctx, c.Key("bench", "", "cycle"), cluster.Holder{Node: "bench", Container: fmt.Sprint(i)}); err == nil {
				err = volumes.RecordFence(vol, volumes.Fence{Token: l.Token, Node: "bench"})
			}
			times = append(times, float64(time.Since(start).Microseconds())/1000)
			err = errors.Join(err, s.Close(ctx))
		}
		c.Close()
		if err != nil {
			return series{}, err
		}
	}
	return newSeries(times), nil
}

func (r *results) printCluster(w io.Writer) {
	c := r.Cluster
	if c == nil {
		return
	}
	fmt.Fprintf(w, "\n## Cluster lock (etcd on loopback), median of %d rounds\n\n", len(c.NodeDisk.Local.Samples))
	fmt.Fprintln(w, "`ctr run --rm true` of a class with one 16 MiB loopfile volume, on a host-local backend and on a cluster backend, paired by round; with etcd's data on the filesystem of the node's state dir and backends, and on a device of its own (a tmpfs here, standing in for the dedicated disk etcd's operators give it).")
	fmt.Fprintln(w, "The shim's own record gives the cluster locks' time on the start's path (the wait for the agent's lock, the fencing token, the alive question), and each container's storage setup and teardown, cluster less local.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| etcd's data | local ms | cluster ms | added ms (95% CI) | goal | lock on the start's path ms (95% CI) | setup added ms | teardown added ms |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|")
	for _, p := range []struct {
		name string
		c    clusterPairs
	}{{"node's disk", c.NodeDisk}, {"own device", c.OwnDevice}} {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.2f (%.2f to %.2f) | < 3 | %.2f (%.2f to %.2f) | %.2f (%.2f to %.2f) | %.2f (%.2f to %.2f) |\n",
			p.name, p.c.Local.Median, p.c.Cluster.Median, p.c.Added, p.c.AddedCI[0], p.c.AddedCI[1], p.c.OnPath, p.c.OnPathCI[0], p.c.OnPathCI[1],
			p.c.SetupAdded, p.c.SetupAddedCI[0], p.c.SetupAddedCI[1], p.c.TeardownAdded, p.c.TeardownAddedCI[0], p.c.TeardownAddedCI[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The lock's own work, timed as the shim does it with the agent running (etcd's data on the node's disk): the agent locks on a lease it holds ready; fencing token; alive check. Then the agent's unlock at delete. The first lock of a node starts the agent; without an agent, a lock would dial etcd and grant a lease first.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| lock ms | unlock ms | first lock, agent start ms | without agent ms |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|")
	fmt.Fprintf(w, "| %.2f | %.2f | %.1f | %.2f |\n", c.Lock.Median, c.Release.Median, c.AgentStart, c.Etcd.Median)
}
