package shim

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// The daemon has the cluster agent take its container's cluster locks
// while containerd connects to it and sends Create, from the spec and
// config read ahead (see startEarly): the etcd transaction, which waits for
// etcd's disk, is then off the start's path. Create's attach takes the lock
// it finds here for the same volume, backend, container and [cluster]
// table, or takes one itself.
//
// Nothing is mounted under a lock before Create's attach asks the agent
// whether it still holds: a lock that no Create takes is released, by
// dropEarly, after earlyLockWait, or by the agent when this shim ends.

// earlyLockWait is how long a lock taken ahead waits for its Create.
const earlyLockWait = 30 * time.Second

// earlyLock is a cluster lock being taken ahead of its container's Create.
type earlyLock struct {
	done  chan struct{} // closed when p (or err) and since are set
	p     *hold.Lock
	since time.Time
	err   error
}

// earlyKey names what a lock taken ahead is for.
func earlyKey(cfg *config.Cluster, jpath, backend string, id volumes.ID) string {
	return fmt.Sprintf("%p\x00%s\x00%s\x00%s", cfg, jpath, backend, id)
}

// startEarlyLocks has the agent take, in the background, the cluster locks
// of the volumes that class gives container c.
func (s *storage) startEarlyLocks(c *container, cfg *config.Config, class *config.Class) {
	var keys []string
	for _, a := range s.clusterAttaches(c, cfg, class) {
		key := earlyKey(a.cfg, a.jpath, a.backend, a.id)
		e := &earlyLock{done: make(chan struct{})}
		s.cluster.mu.Lock()
		if s.cluster.early == nil {
			s.cluster.early = map[string]*earlyLock{}
		}
		_, dup := s.cluster.early[key]
		if !dup {
			s.cluster.early[key] = e
		}
		s.cluster.mu.Unlock()
		if dup {
			continue // a shared volume, twice in the class
		}
		keys = append(keys, key)
		go func() {
			defer close(e.done)
			e.p, e.err = a.start()
			e.since = a.since
		}()
	}
	if len(keys) > 0 {
		time.AfterFunc(earlyLockWait, func() { s.cluster.dropEarly(keys...) })
	}
}

// clusterAttaches are the attaches of the volumes on cluster backends that
// class gives container c, as far as they can be named before its Create.
func (s *storage) clusterAttaches(c *container, cfg *config.Config, class *config.Class) []*clusterAttach {
	if cfg.Cluster == nil {
		return nil
	}
	jpath := state.Dir(cfg.StateDir).Journal(c.namespace, c.id)
	vars, tenant := templateVars(c.spec.Annotations, c.namespace, c.id), tenantOf(c.spec.Annotations)
	var store *volumes.Store
	var out []*clusterAttach
	for _, v := range class.Volumes {
		b, _ := cfg.Backend(v.Backend)
		if b == nil || !b.Cluster {
			continue
		}
		name, err := config.Expand(v.Name, vars)
		if err != nil {
			continue // Create says why
		}
		id, err := volumes.NewID(c.namespace, tenant, name)
		if err != nil {
			continue
		}
		if store == nil {
			store = volumes.Open(state.Dir(cfg.StateDir).Volumes(), s.mounter, s.locks)
		}
		out = append(out, &clusterAttach{s: s, cfg: cfg.Cluster, stateDir: state.Dir(cfg.StateDir).Cluster(), jpath: jpath, c: c,
			backend: b.Name, id: id, mount: store.MountPath(id), dir: volumes.Backend{Path: b.Path}.Dir(id)})
	}
	return out
}

// takeEarly returns the lock taken ahead for key, once it is taken, and
// when it was asked for; nil if there is none. A lock that was held
// elsewhere when it was asked for is asked for again, now, by the caller.
func (cl *clusterLocks) takeEarly(key string) (*hold.Lock, time.Time, error) {
	cl.mu.Lock()
	e := cl.early[key]
	delete(cl.early, key)
	cl.mu.Unlock()
	if e == nil {
		return nil, time.Time{}, nil
	}
	<-e.done
	if errors.Is(e.err, hold.ErrHeld) {
		return nil, time.Time{}, nil
	}
	return e.p, e.since, e.err
}

// dropEarly releases the locks taken ahead for keys, or all of them, that
// no Create took.
func (cl *clusterLocks) dropEarly(keys ...string) {
	cl.mu.Lock()
	var drop []*earlyLock
	for key, e := range cl.early {
		if len(keys) == 0 || slices.Contains(keys, key) {
			drop = append(drop, e)
			delete(cl.early, key)
		}
	}
	cl.mu.Unlock()
	for _, e := range drop {
		go func() {
			<-e.done
			if e.p != nil {
				e.p.ReleaseAsync() // never mounted: the agent revokes its lease
			}
		}()
	}
}
