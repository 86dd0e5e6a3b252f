package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// parking is a lock asked for ahead: being taken until done is closed,
// then l (nil if it could not be taken) waits for its shim's request.
type parking struct {
	done  chan struct{}
	l     *held
	timer *time.Timer
}

// parkKey is what a request must name to claim a lock taken ahead: the
// same etcd, volume, container and shim.
func parkKey(req hold.Request) string {
	return fmt.Sprintf("%q %q %q %q %s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d",
		req.Endpoints, req.CAFile, req.CertFile, req.KeyFile, req.TTL,
		req.Namespace, req.Tenant, req.Volume, req.Backend, req.Container, req.PID)
}

// park takes req's lock ahead, and keeps it for a.parkFor, for the shim to
// claim. Nothing is mounted under a parked lock: one that no shim claims
// is released.
func (a *Agent) park(req hold.Request, stopFor func(context.Context, hold.Request) Stop) error {
	key := parkKey(req)
	p := &parking{done: make(chan struct{})}
	a.mu.Lock()
	if _, dup := a.parked[key]; dup {
		a.mu.Unlock()
		return nil
	}
	a.parked[key] = p
	a.busy++
	p.timer = time.AfterFunc(a.parkFor, func() {
		a.mu.Lock()
		if a.parked[key] == p {
			delete(a.parked, key)
		}
		a.mu.Unlock()
		<-p.done
		if p.l != nil {
			p.l.end() // never claimed: never mounted
		}
		a.leave()
	})
	a.mu.Unlock()
	l, err := a.take(req, stopFor)
	p.l = l
	close(p.done)
	if err != nil && !p.timer.Stop() {
		return err // its timer ran: it left already
	}
	if err != nil {
		a.mu.Lock()
		if a.parked[key] == p {
			delete(a.parked, key)
		}
		a.mu.Unlock()
		a.leave()
	}
	return err
}

// claim returns the lock taken ahead for req, once it is taken, if there is
// one and it still holds; nil if not.
func (a *Agent) claim(req hold.Request) *held {
	key := parkKey(req)
	a.mu.Lock()
	p := a.parked[key]
	delete(a.parked, key)
	a.mu.Unlock()
	if p == nil || !p.timer.Stop() {
		return nil // none, or its timer releases it
	}
	defer a.leave() // the claimant's connection keeps the agent busy
	<-p.done
	if p.l == nil {
		return nil
	}
	if p.l.sess.Alive() != nil {
		p.l.end()
		return nil
	}
	return p.l
}
