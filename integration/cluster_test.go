package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/cluster"
	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
	"github.com/containerd-persist/containerd-persist/internal/etcdtest"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// clusterNS is the namespace of the cluster tests' containers on both
// nodes: a volume's identity includes it, so it is the same on both.
const clusterNS = "persist-cluster"

// clusterTTL is the tests' lease_ttl.
const clusterTTL = 3 * time.Second

// node is one containerd of a two-node cluster on this machine: its own
// daemon, state dir and config, sharing the cluster backend.
type node struct {
	name     string
	d        *containerdtest.Daemon
	stateDir string
	config   string
}

// clusterCase is a cluster test's world: an etcd, node-a and node-b, and a
// cluster backend that both use.
type clusterCase struct {
	t      *testing.T
	dir    string
	etcd   *etcdtest.Server
	a, b   *node
	shared string // the cluster backend
	ttl    time.Duration
	ids    map[*node][]string
}

// writer is a container command that appends numbered records to
// /data/log, syncing after each, forever.
var writer = writerTo("log")

func writerTo(file string) []string {
	return []string{"sh", "-c", "i=0; while true; do i=$((i+1)); echo $i >> /data/" + file + "; sync; done"}
}

func newClusterCase(t *testing.T) *clusterCase { return newClusterCaseTTL(t, clusterTTL) }

func newClusterCaseTTL(t *testing.T, ttl time.Duration) *clusterCase {
	t.Helper()
	testenv.NeedRoot(t)
	if _, err := etcdtest.Binary(); err != nil {
		testenv.Skip(t, "needs an etcd server", err.Error())
	}
	cc := &clusterCase{t: t, dir: t.TempDir(), ttl: ttl, ids: map[*node][]string{}}
	cc.shared = filepath.Join(cc.dir, "shared")
	if err := os.Mkdir(cc.shared, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if cc.etcd, err = etcdtest.New(filepath.Join(cc.dir, "etcd")); err != nil {
		t.Fatal(err)
	}
	if err := cc.etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.cleanup) // after TempDir's removal is registered: runs first
	cc.a, cc.b = cc.startNode("node-a"), cc.startNode("node-b")
	return cc
}

// startNode starts a private containerd acting as node name.
func (cc *clusterCase) startNode(name string) *node {
	cc.t.Helper()
	// Short: shim socket paths under it must fit in 42 characters.
	dir, err := os.MkdirTemp("/tmp", "pc-"+name[len(name)-1:]+"-")
	if err != nil {
		cc.t.Fatal(err)
	}
	n := &node{name: name, d: &containerdtest.Daemon{Dir: dir, Repo: daemon.repo, Tools: daemon.Tools, ShimDir: daemon.bin}}
	n.stateDir = filepath.Join(cc.dir, "state-"+name)
	n.config = filepath.Join(cc.dir, name+".toml")
	cfg := fmt.Sprintf(`version = 1
state_dir = %q
default_class = "db"

[cluster]
etcd = [%q]
node = %q
lease_ttl = "%s"

[backends.shared]
type = "loopfile"
path = %q
cluster = true
default_size = "16MiB"

[classes.db]
mode = "immutable"
[[classes.db.volumes]]
path = "/data"
backend = "shared"
name = "{name}"
`, n.stateDir, cc.etcd.Endpoint, name, cc.ttl, cc.shared)
	if err := os.WriteFile(n.config, []byte(cfg), 0o600); err != nil {
		cc.t.Fatal(err)
	}
	if err := n.d.Start(); err != nil {
		containerdtest.RemoveAll(dir)
		cc.t.Fatal(err)
	}
	if err := n.d.Import(clusterNS, filepath.Join(daemon.dir, "images", "image1.tar")); err != nil {
		cc.t.Fatal(err)
	}
	return n
}

func (n *node) ctr(args ...string) (string, error) { return n.d.CtrOutput(clusterNS, args...) }

// runArgs are ctr run's arguments for a container on n with volume vol.
func (cc *clusterCase) runArgs(n *node, id, vol string, detach bool, cmd ...string) []string {
	args := []string{"run", "--runtime", runtimeName, "--runtime-config-path", n.config, "--annotation", volName(vol)}
	if detach {
		args = append(args, "-d")
	} else {
		args = append(args, "--rm")
	}
	cc.ids[n] = append(cc.ids[n], id)
	return append(append(args, image1, id), cmd...)
}

func (cc *clusterCase) start(n *node, id, vol string, cmd ...string) {
	cc.t.Helper()
	if out, err := n.ctr(cc.runArgs(n, id, vol, true, cmd...)...); err != nil {
		cc.t.Fatalf("start %s on %s: %v: %s", id, n.name, err, out)
	}
}

func (cc *clusterCase) run(n *node, id, vol string, cmd ...string) (string, error) {
	return n.ctr(cc.runArgs(n, id, vol, false, cmd...)...)
}

// mountOf is where node n mounts volume vol while it holds it.
func (n *node) mountOf(vol string) string {
	return filepath.Join(n.stateDir, "mounts", clusterNS, vol)
}

func mounted(path string) bool {
	ms, err := containerdtest.MountsUnder(path)
	return err == nil && len(ms) > 0
}

// records reads the log of numbered records that writer makes and checks
// that they run 1, 2, 3... with none missing; it returns how many.
func records(t *testing.T, log string) int {
	t.Helper()
	lines := strings.Fields(log)
	for i, l := range lines {
		if l != strconv.Itoa(i+1) {
			t.Fatalf("record %d is %q: records lost or torn:\n%s", i+1, l, log)
		}
	}
	return len(lines)
}

// waitRecords waits until node n's mount of vol shows at least want
// records, and returns how many it shows. Every record but the last shown
// was synced: writer syncs each before it writes the next.
func (cc *clusterCase) waitRecords(n *node, vol string, want int) int {
	return cc.waitRecordsIn(n, vol, "log", want)
}

func (cc *clusterCase) waitRecordsIn(n *node, vol, file string, want int) int {
	cc.t.Helper()
	path := filepath.Join(n.mountOf(vol), "data", file)
	got := 0
	cc.eventually(fmt.Sprintf("%d records in %s", want, path), func() bool {
		b, _ := os.ReadFile(path)
		got = len(strings.Fields(string(b)))
		return got >= want
	})
	return got
}

func (cc *clusterCase) eventually(what string, cond func() bool) {
	cc.t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	cc.t.Fatalf("timed out waiting for %s", what)
}

// exclusive watches both nodes' mounts of vol until stopped, and fails the
// test if it ever sees both mounted at once.
func (cc *clusterCase) exclusive(vol string) (stop func()) {
	var both atomic.Bool
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if mounted(cc.a.mountOf(vol)) && mounted(cc.b.mountOf(vol)) {
				both.Store(true)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		if both.Load() {
			cc.t.Errorf("volume %s was mounted by node-a and node-b at once", vol)
		}
	}
}

// retryRun runs a container on n until it succeeds, and returns its output.
func (cc *clusterCase) retryRun(n *node, id, vol string, cmd ...string) string {
	cc.t.Helper()
	var out string
	var err error
	cc.eventually(fmt.Sprintf("%s to run on %s", id, n.name), func() bool {
		out, err = cc.run(n, id, vol, cmd...)
		if err != nil {
			n.ctr("containers", "rm", id)
		}
		return err == nil
	})
	return out
}

func (cc *clusterCase) remove(n *node, id string) {
	n.ctr("task", "kill", "-s", "SIGKILL", id)
	for range 50 {
		out, err := n.ctr("task", "rm", "-f", id)
		if err == nil || strings.Contains(out, "not found") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := n.ctr("containers", "rm", id); err != nil && !strings.Contains(out, "not found") {
		cc.t.Errorf("remove %s on %s: %v: %s", id, n.name, err, out)
	}
}

// cleanup deletes the containers, checks that neither node left anything,
// and stops the daemons and etcd by their PIDs.
func (cc *clusterCase) cleanup() {
	t := cc.t
	for _, n := range []*node{cc.a, cc.b} {
		if n == nil {
			continue
		}
		if n.d.PID() == 0 {
			if err := n.d.Start(); err != nil { // a node killed by the test cleans up its dead shims
				t.Error(err)
			}
		}
		for _, id := range cc.ids[n] {
			cc.remove(n, id)
		}
	}
	for _, n := range []*node{cc.a, cc.b} {
		if n == nil {
			continue
		}
		for _, e := range leftoversIn(n.stateDir, clusterNS) {
			t.Errorf("%s left in its state dir: %s", n.name, e)
		}
	}
	// Every lock is released (a delete's release does not wait for
	// etcd), and then nothing is left of the nodes' cluster agents.
	if cc.etcd.PID() != 0 {
		cc.eventually("every volume lock to be released in etcd", func() bool {
			held, err := cc.holders()
			return err == nil && len(held) == 0
		})
	}
	for _, n := range []*node{cc.a, cc.b} {
		if n == nil {
			continue
		}
		if err := hold.StopAgent(filepath.Join(n.stateDir, "cluster")); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(n.stateDir, "cluster", hold.LogFile)); err == nil {
				t.Logf("--- %s cluster agent log (tail) ---\n%s", n.name, tail(string(b), 3000))
			}
		}
	}
	for _, n := range []*node{cc.a, cc.b} {
		if n != nil {
			drainSpares(t, n.stateDir)
		}
	}
	for _, m := range mountsUnder(cc.dir) {
		t.Errorf("left mounted: %s", m)
	}
	for _, l := range loopsUnder(cc.dir) {
		t.Errorf("left a loop device: %s", l)
	}
	locks, _ := filepath.Glob(filepath.Join(cc.shared, ".locks", clusterNS, "*"))
	for _, l := range locks {
		t.Errorf("left a volume lock: %s", l)
	}
	for _, n := range []*node{cc.a, cc.b} {
		if n == nil {
			continue
		}
		if t.Failed() {
			t.Logf("--- %s containerd log (tail) ---\n%s", n.name, tail(n.d.Log(), 6000))
		}
		if err := n.d.Remove(); err != nil {
			t.Error(err)
		}
	}
	cc.etcd.Stop()
	unmountUnder(cc.dir)
}

// holders lists the volume locks in etcd.
func (cc *clusterCase) holders() ([]cluster.Held, error) {
	c, err := cluster.Dial(cluster.Options{Endpoints: []string{cc.etcd.Endpoint}, TTL: cc.ttl})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Holders(context.Background())
}

// persistctl runs persistctl with node n's config.
func (cc *clusterCase) persistctl(n *node, args ...string) string {
	cc.t.Helper()
	out, err := exec.Command(filepath.Join(daemon.bin, "persistctl"), append([]string{"--config", n.config}, args...)...).CombinedOutput()
	if err != nil {
		cc.t.Fatalf("persistctl %v on %s: %v: %s", args, n.name, err, out)
	}
	return string(out)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestClusterExclusive: a volume held on node-a is refused on node-b with
// an error naming node-a, and is node-b's once node-a deletes its container.
func TestClusterExclusive(t *testing.T) {
	cc := newClusterCase(t)
	defer cc.exclusive("db")()
	cc.start(cc.a, "a1", "db", "sh", "-c", "echo from-a > /data/x; sleep 300")
	cc.eventually("a1's write", func() bool {
		b, _ := os.ReadFile(filepath.Join(cc.a.mountOf("db"), "data", "x"))
		return string(b) == "from-a\n"
	})
	out, err := cc.run(cc.b, "b1", "db", "cat", "/data/x")
	if err == nil {
		t.Fatalf("node-b attached a volume that node-a holds: %s", out)
	}
	mustContain(t, out, "held", "node node-a (container a1")
	if strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("the error is not one line:\n%s", out)
	}
	cc.b.ctr("containers", "rm", "b1")
	// Both nodes' persistctl see who holds it.
	out = cc.persistctl(cc.b, "cluster")
	mustContain(t, out, "node-a", "a1", "persist-cluster")
	out = cc.persistctl(cc.b, "-n", clusterNS, "volumes", "ls")
	mustContain(t, out, "a1 on node node-a")
	cc.remove(cc.a, "a1")
	out, err = cc.run(cc.b, "b2", "db", "cat", "/data/x")
	if err != nil {
		t.Fatalf("node-b after node-a deleted its container: %v: %s", err, out)
	}
	mustContain(t, out, "from-a")
}

// killNode kills node n's containerd and the shim of container id by
// their PIDs, leaving the container running; the node's cluster agent,
// which holds vol's lock, must then stop the container and unmount vol.
func (cc *clusterCase) killNode(n *node, id, vol string) {
	cc.t.Helper()
	initPID := atoi(readFile(cc.t, filepath.Join(n.d.Dir, "state/io.containerd.runtime.v2.task", clusterNS, id, "init.pid")))
	shimPID := parentOf(cc.t, initPID)
	for _, pid := range []int{n.d.PID(), shimPID} {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			cc.t.Fatalf("kill %d: %v", pid, err)
		}
	}
	cc.eventually(n.name+"'s containerd and shim to die", func() bool { return !alive(n.d.PID()) && !alive(shimPID) })
	os.Remove(filepath.Join(n.d.Dir, "containerd.pid"))
	cc.eventually("the cluster agent to stop "+id+" and unmount "+vol, func() bool {
		return !alive(initPID) && !mounted(n.mountOf(vol))
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	stat := readFile(t, fmt.Sprintf("/proc/%d/stat", pid))
	return atoi(strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])[1])
}

// TestClusterFailover: a node's containerd and shim die while its container
// writes synced records; the container is stopped, the other node is
// refused until the lease expires, then attaches and finds every record.
// The nodes swap roles each round; make stress runs many.
func TestClusterFailover(t *testing.T) {
	cc := newClusterCase(t)
	defer cc.exclusive("db")()
	for round := range rounds(1) {
		x, y := cc.a, cc.b
		if round%2 == 1 {
			x, y = y, x
		}
		file := fmt.Sprintf("log-%d", round)
		id := fmt.Sprintf("%s-%d", x.name, round)
		cc.start(x, id, "db", writerTo(file)...)
		synced := cc.waitRecordsIn(x, "db", file, 20) - 1
		cc.killNode(x, id, "db")
		probe := fmt.Sprintf("probe-%d", round)
		out, err := cc.run(y, probe, "db", "cat", "/data/"+file)
		if err == nil {
			t.Fatalf("round %d: %s attached while %s's lease lived: %s", round, y.name, x.name, out)
		}
		mustContain(t, out, fmt.Sprintf("node %s (container %s", x.name, id))
		y.ctr("containers", "rm", probe)
		out = cc.retryRun(y, fmt.Sprintf("%s-%d", y.name, round), "db", "cat", "/data/"+file)
		if got := records(t, out); got < synced {
			t.Fatalf("round %d: %s found %d records, %s had synced %d", round, y.name, got, x.name, synced)
		}
		// The dead node comes back and cleans up after its dead shim.
		if err := x.d.Start(); err != nil {
			t.Fatal(err)
		}
		cc.remove(x, id)
	}
}

// TestClusterFence: etcd stops (a partition); node-a's container is fenced
// before its lease can expire, node-b cannot attach while etcd is away, and
// can once it is back.
func TestClusterFence(t *testing.T) {
	cc := newClusterCase(t)
	defer cc.exclusive("db")()
	cc.start(cc.a, "a1", "db", writer...)
	synced := cc.waitRecords(cc.a, "db", 20) - 1
	cc.etcd.Stop()
	cc.eventually("node-a to fence a1", func() bool {
		out, _ := cc.a.ctr("task", "ls")
		return !mounted(cc.a.mountOf("db")) && strings.Contains(out, "STOPPED") && strings.Contains(cc.a.d.Log(), `msg="fence: `)
	})
	// The agent says how long before the lease's deadline, measured on its
	// monotonic clock, it had stopped the container and unmounted the
	// volume; the shim, whether it and the agent did all they had to.
	agentLog := readFile(t, filepath.Join(cc.a.stateDir, "cluster", hold.LogFile))
	if i := strings.Index(agentLog, "persistctl cluster agent: fence: "); i < 0 {
		t.Errorf("no fence line in node-a's cluster agent log:\n%s", agentLog)
	} else {
		t.Log(agentLog[i : i+strings.IndexByte(agentLog[i:]+"\n", '\n')])
	}
	// And persistctl metrics counts it.
	mustContain(t, cc.persistctl(cc.a, "metrics"),
		`persist_cluster_fence_events_total{backend="shared",namespace="persist-cluster",outcome="stopped",tenant="",volume="db"} 1`)
	log := cc.a.d.Log()
	i := strings.Index(log, `msg="fence: `)
	line := log[strings.LastIndexByte(log[:i], '\n')+1:]
	line = line[:strings.IndexByte(line+"\n", '\n')]
	t.Log(line)
	if !strings.Contains(line, "fence: lost the cluster lease; stopped the container and released its cluster volumes") {
		t.Errorf("node-a did not fence before its lease could expire: %s", line)
	}
	out, err := cc.run(cc.b, "b1", "db", "cat", "/data/log")
	if err == nil {
		t.Fatalf("node-b attached while etcd was away: %s", out)
	}
	mustContain(t, out, "etcd cannot be reached", cc.etcd.Endpoint)
	cc.b.ctr("containers", "rm", "b1")
	if err := cc.etcd.Start(); err != nil {
		t.Fatal(err)
	}
	out = cc.retryRun(cc.b, "b2", "db", "cat", "/data/log")
	if got := records(t, out); got < synced {
		t.Fatalf("node-b found %d records, node-a had synced %d", got, synced)
	}
}

// TestClusterGC: what a dead shim of node-a left in etcd is released by
// node-a's persistctl gc, long before its lease would expire.
func TestClusterGC(t *testing.T) {
	cc := newClusterCaseTTL(t, time.Minute)
	defer cc.exclusive("db")()
	cc.start(cc.a, "a1", "db", writer...)
	synced := cc.waitRecords(cc.a, "db", 5) - 1
	cc.killNode(cc.a, "a1", "db")
	out, err := cc.run(cc.b, "b1", "db", "cat", "/data/log")
	if err == nil {
		t.Fatalf("node-b attached while node-a's lease lived: %s", out)
	}
	cc.b.ctr("containers", "rm", "b1")
	// node-b's gc leaves node-a's lock alone.
	if out := cc.persistctl(cc.b, "gc"); strings.Contains(out, "cluster lock") {
		t.Errorf("node-b's gc touched node-a's lock:\n%s", out)
	}
	out = cc.persistctl(cc.a, "gc")
	mustContain(t, out, "cluster lock", "/containerd-persist/volumes/persist-cluster/db", "removed")
	// Well within the minute of the lease: released by gc.
	out = cc.retryRun(cc.b, "b2", "db", "cat", "/data/log")
	if got := records(t, out); got < synced {
		t.Fatalf("node-b found %d records, node-a had synced %d", got, synced)
	}
}
