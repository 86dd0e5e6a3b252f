package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/cluster"
	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// clusterLocks are the cluster-wide locks of this shim's containers, all
// bound to one lease that the shim keeps alive (see package cluster). The
// zero value holds none and has dialed nothing: a shim whose containers
// have no volume on a cluster backend never talks to etcd.
type clusterLocks struct {
	// locking serializes the taking of locks, which waits for etcd; mu,
	// never held across a call to etcd, guards the fields, so that a fence
	// never waits for a create that waits for etcd.
	locking sync.Mutex
	mu      sync.Mutex
	client  *cluster.Client
	opts    cluster.Options
	session *cluster.Session
	held    map[string]*clusterHeld // by journal path
}

// clusterHeld is what one container holds in the cluster.
type clusterHeld struct {
	namespace, id, bundle string
	session               *cluster.Session
	locks                 []*cluster.Lock
	watchdogs             []*watchdog
}

// clusterGuard is the cluster guard of a volume on backend b
// (volumes.AttachOptions): nil for a host-local backend.
func (r *setupRun) clusterGuard(b *config.Backend, id volumes.ID) volumes.ClusterGuard {
	if !b.Cluster || r.cfg.Cluster == nil {
		return nil
	}
	return &clusterAttach{s: r.owner, cfg: r.cfg.Cluster, jpath: r.jpath, c: r.c, backend: b.Name, id: id, mount: r.store.MountPath(id)}
}

// clusterAttach takes and checks the cluster lock of one volume attach.
type clusterAttach struct {
	s       *storage
	cfg     *config.Cluster
	jpath   string // of the container
	c       *container
	backend string
	id      volumes.ID
	mount   string // where the volume is mounted on this host

	lock     *cluster.Lock
	session  *cluster.Session
	since    time.Time
	watchdog *watchdog
}

// Lock takes the volume's lock in etcd for the container.
func (a *clusterAttach) Lock() error {
	cl := &a.s.cluster
	ctx := context.Background() // each call to etcd is bounded by the cluster's connect timeout
	cl.locking.Lock()
	defer cl.locking.Unlock()
	sess, client, err := cl.liveSession(ctx, a.s, cluster.OptionsOf(a.cfg))
	if err != nil {
		return err
	}
	a.since = time.Now().UTC()
	h := cluster.Holder{
		Node: a.cfg.Node, Namespace: a.id.Namespace(), Tenant: a.id.Tenant(), Volume: a.id.Name(), Backend: a.backend,
		Container: a.c.id, PID: os.Getpid(), Since: a.since,
	}
	l, err := sess.Lock(ctx, client.Key(a.id.Namespace(), a.id.Tenant(), a.id.Name()), h)
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
		held = &clusterHeld{namespace: a.c.namespace, id: a.c.id, bundle: a.c.bundle, session: sess}
		cl.held[a.jpath] = held
	}
	// Held from here: the release of a failed setup unlocks it.
	held.locks = append(held.locks, l)
	a.lock, a.session = l, sess
	a.watchdog = startWatchdog(a.c.bundle, a.mount) // while the volume is made ready
	held.watchdogs = append(held.watchdogs, a.watchdog)
	return nil
}

// BeforeMount records the lock's fencing token in the volume, and makes
// sure that the lease still holds: what it may have lost meanwhile is not
// mounted.
func (a *clusterAttach) BeforeMount(dir string) error {
	if err := a.watchdog.ready(); err != nil {
		return err
	}
	if err := volumes.RecordFence(dir, volumes.Fence{Token: a.lock.Token, Node: a.cfg.Node, Container: a.c.id, At: a.since}); err != nil {
		return err
	}
	return a.session.Alive()
}

// liveSession returns the live session and its client, granting a new
// lease when there is none, or the last was fenced. Called under locking.
func (cl *clusterLocks) liveSession(ctx context.Context, s *storage, opts cluster.Options) (*cluster.Session, *cluster.Client, error) {
	cl.mu.Lock()
	sess, client, same, held := cl.session, cl.client, sameCluster(cl.opts, opts), len(cl.held)
	cl.mu.Unlock()
	if sess != nil && sess.Alive() == nil && same {
		return sess, client, nil
	}
	if client != nil && !same && held > 0 {
		return nil, nil, fmt.Errorf("this shim's containers hold volumes of another [cluster] (%v): give containers of one shim one cluster config", cl.opts.Endpoints)
	}
	if client == nil || !same {
		c, err := cluster.Dial(opts)
		if err != nil {
			return nil, nil, err
		}
		if sess != nil {
			sess.Close(ctx) // of the other cluster, holding nothing
		}
		if client != nil {
			client.Close()
		}
		client = c
		cl.mu.Lock()
		cl.client, cl.opts = c, opts
		cl.mu.Unlock()
	}
	sess, err := client.Grant(ctx, func(sess *cluster.Session, why error, deadline time.Time) { cl.fence(s, sess, why, deadline) })
	if err != nil {
		return nil, nil, err
	}
	cl.mu.Lock()
	cl.session = sess
	cl.mu.Unlock()
	return sess, client, nil
}

func sameCluster(a, b cluster.Options) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// unlockAfter releases the cluster locks of the container whose journal is
// jpath once its storage is released (released is that release's error,
// which it returns): a volume that may still be mounted here keeps its lock,
// until this shim's lease ends. The locks go with the lease when no other
// container of this shim holds any.
func (cl *clusterLocks) unlockAfter(jpath string, released error) error {
	if released != nil {
		return released
	}
	cl.mu.Lock()
	held := cl.held[jpath]
	delete(cl.held, jpath)
	last := len(cl.held) == 0
	sess := cl.session
	if last {
		cl.session = nil
	}
	cl.mu.Unlock()
	if held == nil {
		return nil
	}
	for _, w := range held.watchdogs {
		w.release()
	}
	ctx := context.Background()
	var err error
	if last && sess == held.session {
		err = sess.Close(ctx) // revoking the lease deletes its keys
	} else {
		for _, l := range held.locks {
			err = errors.Join(err, held.session.Unlock(ctx, l))
		}
	}
	if err != nil {
		// Released here: the lock goes when the lease expires.
		log.L.WithError(err).WithField("id", held.id).Warn("release cluster locks of a released container; they go when the lease expires")
	}
	return nil
}

// fence stops every container of this shim that holds a lock of the
// session sess, whose lease may be lost at deadline (another node may then
// take the volumes), and releases their storage: all before deadline.
// Called once per lease.
func (cl *clusterLocks) fence(s *storage, sess *cluster.Session, why error, deadline time.Time) {
	cl.mu.Lock()
	victims := map[string]*clusterHeld{}
	for jpath, h := range cl.held {
		if h.session == sess {
			victims[jpath] = h
			delete(cl.held, jpath) // their release below needs no unlock
		}
	}
	if cl.session == sess {
		cl.session = nil
	}
	cl.mu.Unlock()
	start := time.Now()
	killErrs := map[string]error{}
	for jpath, h := range victims { // every container first: they stop writing
		killErrs[jpath] = killInit(h.bundle, deadline)
	}
	killed := time.Now()
	for jpath, h := range victims {
		relErr := s.teardown(jpath, h.namespace, h.id)
		left := time.Until(deadline) // stopped and released, as far as this node goes
		if relErr == nil {
			for _, w := range h.watchdogs {
				w.release()
			}
		}
		keys := make([]string, 0, len(h.locks))
		for _, l := range h.locks {
			keys = append(keys, l.Key)
		}
		entry := log.L.WithError(why).WithField("id", h.id).WithField("namespace", h.namespace).
			WithField("locks", strings.Join(keys, ",")).
			WithField("started_before_deadline", deadline.Sub(start).Round(time.Millisecond).String()).
			WithField("kill", killed.Sub(start).Round(time.Millisecond).String()).
			WithField("release", time.Since(killed).Round(time.Millisecond).String()).
			WithField("before_deadline", left.Round(time.Millisecond).String())
		switch killErr := killErrs[jpath]; {
		case killErr != nil || relErr != nil:
			entry.WithField("kill_error", fmt.Sprint(killErr)).WithField("release_error", fmt.Sprint(relErr)).Error("fence: could not stop the container and release its cluster volumes; another node may take them when the lease expires")
		case left <= 0:
			entry.Error("fence: stopped the container and released its cluster volumes, but after the lease may have expired")
		default:
			entry.Error("fence: lost the cluster lease; stopped the container and released its cluster volumes")
		}
	}
	// Tell etcd, if it answers; else the lease expires by itself.
	if err := sess.Close(context.Background()); err != nil {
		log.L.WithError(err).Warn("fence: revoke the lost lease")
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
