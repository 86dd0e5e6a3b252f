package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// clusterLocks are the cluster-wide locks of this shim's containers. They
// are held by the node's cluster agent, `persistctl cluster agent` (package
// cluster/hold), which dials etcd, keeps the locks' leases alive and fences
// by itself: the shim never links the etcd client. The zero value holds
// none and has started nothing: a shim whose containers have no volume on a
// cluster backend never talks to the agent.
type clusterLocks struct {
	mu    sync.Mutex
	held  map[string]*clusterHeld // by journal path
	early map[string]*earlyLock   // taken before Create, by earlyKey
}

// clusterHeld is what one container holds in the cluster.
type clusterHeld struct {
	namespace, id, bundle string
	ttl                   time.Duration
	locks                 []*hold.Lock
	keys                  []string      // of the volumes, for the log
	took                  time.Duration // on the start's path: Lock and BeforeMount
}

// clusterGuard is the cluster guard of a volume on backend b
// (volumes.AttachOptions): nil for a host-local backend.
func (r *setupRun) clusterGuard(b *config.Backend, id volumes.ID) volumes.ClusterGuard {
	if !b.Cluster || r.cfg.Cluster == nil {
		return nil
	}
	return &clusterAttach{s: r.owner, cfg: r.cfg.Cluster, stateDir: state.Dir(r.cfg.StateDir).Cluster(), jpath: r.jpath, c: r.c, backend: b.Name, id: id,
		mount: r.store.MountPath(id), dir: volumes.Backend{Path: b.Path}.Dir(id)}
}

// clusterAttach takes and checks the cluster lock of one volume attach.
type clusterAttach struct {
	s        *storage
	cfg      *config.Cluster
	stateDir string // the agent's, state.Dir.Cluster
	jpath    string // of the container
	c        *container
	backend  string
	id       volumes.ID
	mount    string // where the volume is mounted on this host
	dir      string // the volume's directory

	lock  *hold.Lock
	since time.Time
}

// Lock has the agent take the volume's lock in etcd for the container: the
// lock taken for it before its Create, if there is one.
func (a *clusterAttach) Lock() error {
	start := time.Now()
	cl := &a.s.cluster
	p, since, err := cl.takeEarly(earlyKey(a.cfg, a.jpath, a.backend, a.id))
	if p == nil && err == nil {
		p, err = a.start()
	} else {
		a.since = since
	}
	if err != nil {
		return err
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.held == nil {
		cl.held = map[string]*clusterHeld{}
	}
	held := cl.held[a.jpath]
	if held == nil {
		held = &clusterHeld{namespace: a.c.namespace, id: a.c.id, bundle: a.c.bundle, ttl: a.cfg.TTL()}
		cl.held[a.jpath] = held
	}
	// Held from here: the release of a failed setup unlocks it.
	held.locks = append(held.locks, p)
	held.keys = append(held.keys, a.id.String())
	held.took += time.Since(start)
	a.lock = p
	return nil
}

// start has the agent take the lock, starting the agent if none serves.
func (a *clusterAttach) start() (*hold.Lock, error) {
	a.since = time.Now().UTC()
	s, jpath := a.s, a.jpath
	return hold.Start(persistctlPath(), a.socket(), a.request(os.Getpid()), func(why error, m hold.Message) { s.cluster.fence(s, jpath, why, m) })
}

// request is the agent's request for the lock, for the shim whose PID is
// pid.
func (a *clusterAttach) request(pid int) hold.Request {
	return hold.Request{
		Endpoints: a.cfg.Etcd, CAFile: a.cfg.CAFile, CertFile: a.cfg.CertFile, KeyFile: a.cfg.KeyFile, TTL: a.cfg.TTL(),
		Holder: hold.Holder{
			Node: a.cfg.Node, Namespace: a.id.Namespace(), Tenant: a.id.Tenant(), Volume: a.id.Name(), Backend: a.backend,
			Container: a.c.id, PID: pid, Since: a.since,
		},
		Bundle: a.c.bundle, Mount: a.mount, Dir: a.dir,
	}
}

func (a *clusterAttach) socket() string { return filepath.Join(a.stateDir, hold.Socket) }

// BeforeMount records the lock's fencing token in the volume, unless the
// agent did, and then asks
// the agent whether the lease still holds: what it may have lost meanwhile
// is not mounted.
func (a *clusterAttach) BeforeMount(dir string) error {
	defer a.s.cluster.add(a.jpath, time.Now())
	// The agent records it before it answers with the token, when the
	// volume exists then: synced already, it is not written again.
	if f, err := volumes.ReadFence(dir); err != nil || f.Token != a.lock.Token {
		if err := volumes.RecordFence(dir, volumes.Fence{Token: a.lock.Token, Node: a.cfg.Node, Container: a.c.id, At: a.since}); err != nil {
			return err
		}
	}
	return a.lock.Alive()
}

// add adds the time since start to what the cluster locks of the
// container whose journal is jpath took on the start's path.
func (cl *clusterLocks) add(jpath string, start time.Time) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if h := cl.held[jpath]; h != nil {
		h.took += time.Since(start)
	}
}

// took is what the cluster locks of the container whose journal is jpath
// took on the start's path.
func (cl *clusterLocks) took(jpath string) time.Duration {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if h := cl.held[jpath]; h != nil {
		return h.took
	}
	return 0
}

// persistctlPath finds persistctl, which is the cluster agent: beside the
// shim, else on PATH; "" when it is in neither.
func persistctlPath() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "persistctl")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("persistctl")
	return p
}

// unlockAfter releases the cluster locks of the container whose journal is
// jpath once its storage is released (released is that release's error,
// which it returns): a volume that may still be mounted here keeps its lock,
// until this shim ends and the agent fences them.
func (cl *clusterLocks) unlockAfter(jpath string, released error) error {
	if released != nil {
		return released
	}
	cl.mu.Lock()
	held := cl.held[jpath]
	delete(cl.held, jpath)
	cl.mu.Unlock()
	if held == nil {
		return nil
	}
	for _, p := range held.locks {
		p.ReleaseAsync() // revoking its lease deletes its lock; the agent logs what it cannot do
	}
	return nil
}

// fence stops the container whose journal is jpath, one of whose locks the
// agent fenced (it could not renew the lease in time, and has killed the
// container and unmounted its volume) or lost (the agent ended, and renews
// the lease no more), and releases its storage. m is the agent's report of
// its fence.
func (cl *clusterLocks) fence(s *storage, jpath string, why error, m hold.Message) {
	cl.mu.Lock()
	h := cl.held[jpath]
	delete(cl.held, jpath) // released below
	cl.mu.Unlock()
	if h == nil {
		return // released already
	}
	start := time.Now()
	// The agent killed it, if it could: this shim's own kill is for an
	// agent that died. A live agent's lease lives a third of its TTL
	// past the last moment it had not fenced.
	killErr := killInit(h.bundle, start.Add(h.ttl/3))
	relErr := s.teardown(jpath, h.namespace, h.id)
	entry := log.L.WithError(why).WithField("id", h.id).WithField("namespace", h.namespace).
		WithField("volumes", strings.Join(h.keys, ",")).
		WithField("release", time.Since(start).Round(time.Millisecond).String())
	if m.Fenced != "" {
		entry = entry.WithField("agent_before_deadline", m.Left.Round(time.Millisecond).String())
	}
	switch {
	case killErr != nil || relErr != nil || m.FenceError != "":
		entry.WithField("kill_error", fmt.Sprint(killErr)).WithField("release_error", fmt.Sprint(relErr)).WithField("agent_error", m.FenceError).
			Error("fence: could not stop the container and release its cluster volumes; another node may take them when the lease expires")
	case m.Fenced != "" && m.Left <= 0:
		entry.Error("fence: stopped the container and released its cluster volumes, but after the lease may have expired")
	default:
		entry.Error("fence: lost the cluster lease; stopped the container and released its cluster volumes")
	}
	if relErr != nil {
		// Still mounted here, maybe: the other volumes keep their locks
		// until the container's storage is released.
		cl.mu.Lock()
		if cl.held == nil {
			cl.held = map[string]*clusterHeld{}
		}
		cl.held[jpath] = h
		cl.mu.Unlock()
		return
	}
	for _, p := range h.locks {
		p.ReleaseAsync()
	}
}

// killInit kills a container's init process with SIGKILL, which takes every
// process of its PID namespace with it, and waits until it is gone or
// deadline passes. Only a child of this shim is killed: a PID that was
// reused is not.
func killInit(bundle string, deadline time.Time) error {
	b, err := os.ReadFile(filepath.Join(bundle, "init.pid"))
	if err != nil {
		return nil // never started
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("init.pid of %s: %q", bundle, b)
	}
	if ppid, state := procStat(pid); ppid != os.Getpid() || state == "Z" {
		return nil // gone, or not ours
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("kill container init %d: %w", pid, err)
	}
	for time.Now().Before(deadline) {
		if _, state := procStat(pid); state == "" || state == "Z" {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("container init %d still runs at the deadline", pid)
}

// procStat returns a process's parent and state; 0 and "" when it is gone.
func procStat(pid int) (int, string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, ""
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, ""
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid, f[0]
}
