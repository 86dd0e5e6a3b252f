package cluster

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// pool is the agent's client of one etcd, and a lease granted ahead on it.
type pool struct {
	c *Client

	mu       sync.Mutex
	spare    *Session // granted, kept alive, not yet bound to a lock
	granting bool
	closed   bool
}

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

// session returns a lease for one lock, with fence as its fence: the one
// granted ahead if it is still sure to live, else a new one. Another is
// granted ahead in the background, for the next lock.
func (p *pool) session(ctx context.Context, fence Fence) (*Session, error) {
	p.mu.Lock()
	s := p.spare
	p.spare = nil
	p.mu.Unlock()
	defer func() { go p.refill() }()
	if s != nil && s.adopt(fence) {
		return s, nil
	}
	if s != nil {
		go s.Close(context.Background()) // it could not be renewed in time
	}
	return p.c.Grant(ctx, fence)
}

// refill grants a lease ahead, unless one is there or being granted.
func (p *pool) refill() {
	p.mu.Lock()
	if p.spare != nil || p.granting || p.closed {
		p.mu.Unlock()
		return
	}
	p.granting = true
	p.mu.Unlock()
	s, err := p.c.Grant(context.Background(), nil)
	p.mu.Lock()
	p.granting = false
	if err == nil && !p.closed {
		p.spare, s = s, nil
	}
	p.mu.Unlock()
	if s != nil {
		s.Close(context.Background())
	}
}

// close revokes the lease granted ahead and closes the client. Leases
// bound to locks are their holders' to end.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	s := p.spare
	p.spare = nil
	p.mu.Unlock()
	if s != nil {
		s.Close(context.Background())
	}
	p.c.Close()
}
