package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// pool is the agent's client of one etcd, and leases kept alive for the
// next locks: granted ahead, or given back by a released lock. A lock then
// costs one etcd write when it is taken and one when it is released, the
// grant being off the start's path. etcd syncs its log on each write: on a
// node whose etcd shares the disk, a write during a container's start
// slows the start's own syncs.
type pool struct {
	c *Client

	mu       sync.Mutex
	spares   []*Session // kept alive, bound to no lock
	granting bool
	closed   bool
}

// maxSpares bounds the leases a pool keeps alive for no lock: those given
// back past it are revoked.
const maxSpares = 4

// refillAfter is how long after a pool's last spare was taken it grants
// another, if no released lock gave one back meanwhile: after the start
// that took it.
const refillAfter = time.Second

// pool returns the pool of req's [cluster] table, dialling it the first
// time (Dial does not wait for a connection).
func (a *Agent) pool(req hold.Request) (*pool, error) {
	o := Options{Endpoints: req.Endpoints, CAFile: req.CAFile, CertFile: req.CertFile, KeyFile: req.KeyFile, Node: req.Node, TTL: req.TTL}
	key := fmt.Sprintf("%q %q %q %q %s", o.Endpoints, o.CAFile, o.CertFile, o.KeyFile, o.TTL)
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pools[key]; ok {
		return p, nil
	}
	c, err := Dial(o)
	if err != nil {
		return nil, err
	}
	p := &pool{c: c}
	a.pools[key] = p
	return p, nil
}

// session returns a lease for one lock, with fence as its fence: a spare
// if one is still sure to live, else a new one.
func (p *pool) session(ctx context.Context, fence Fence) (*Session, error) {
	for {
		p.mu.Lock()
		var s *Session
		if n := len(p.spares); n > 0 {
			s, p.spares = p.spares[n-1], p.spares[:n-1]
		}
		empty := len(p.spares) == 0
		p.mu.Unlock()
		if s == nil {
			time.AfterFunc(refillAfter, p.refill)
			return p.c.Grant(ctx, fence)
		}
		if empty {
			time.AfterFunc(refillAfter, p.refill)
		}
		if s.adopt(fence) {
			return s, nil
		}
		go s.Close(context.Background()) // it could not be renewed in time
	}
}

// refill grants a spare lease, unless one is there or being granted.
func (p *pool) refill() {
	p.mu.Lock()
	if len(p.spares) > 0 || p.granting || p.closed {
		p.mu.Unlock()
		return
	}
	p.granting = true
	p.mu.Unlock()
	s, err := p.c.Grant(context.Background(), nil)
	if err == nil {
		p.giveBack(s)
	}
	p.mu.Lock()
	p.granting = false
	p.mu.Unlock()
}

// giveBack keeps s, bound to no lock now, as a spare, or revokes it.
func (p *pool) giveBack(s *Session) {
	p.mu.Lock()
	keep := !p.closed && len(p.spares) < maxSpares && s.adopt(nil)
	if keep {
		p.spares = append(p.spares, s)
	}
	p.mu.Unlock()
	if !keep {
		s.Close(context.Background())
	}
}

// close revokes the spare leases and closes the client. Leases bound to
// locks are their holders' to end.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	spares := p.spares
	p.spares = nil
	p.mu.Unlock()
	for _, s := range spares {
		s.Close(context.Background())
	}
	p.c.Close()
}
