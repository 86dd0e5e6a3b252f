package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// ErrFenced is returned by a Session that could not renew its lease in time
// and fenced itself.
var ErrFenced = hold.ErrFenced

// Fence is what a Session does when its lease may be lost: stop every
// container that holds one of its locks and release their volumes, before
// deadline (on the monotonic clock). why says what happened.
type Fence func(s *Session, why error, deadline time.Time)

// Session is a lease that this process keeps alive, and the locks bound to
// it. See the package doc for its margins.
type Session struct {
	c     *Client
	lease clientv3.LeaseID
	ttl   time.Duration // as granted
	fence Fence

	mu       sync.Mutex
	deadline time.Time // the lease lives at least until then
	fenced   error
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// Grant takes a lease of TTL and keeps it alive until Close, or until it
// cannot, when fence is called once.
func (c *Client) Grant(ctx context.Context, fence Fence) (*Session, error) {
	s := &Session{c: c, fence: fence, stop: make(chan struct{}), done: make(chan struct{})}
	sent := time.Now()
	err := c.call(ctx, "grant a lease", func(ctx context.Context) error {
		resp, err := c.etcd.Grant(ctx, int64(c.opts.TTL/time.Second))
		if err == nil {
			s.lease, s.ttl = resp.ID, time.Duration(resp.TTL)*time.Second
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.deadline = sent.Add(s.ttl)
	go func() {
		why := s.keepAlive()
		close(s.done) // first: the fence may Close the session
		if why != nil {
			s.doFence(why)
		}
	}()
	return s, nil
}

// Lease is the session's lease ID.
func (s *Session) Lease() int64 { return int64(s.lease) }

// renewEvery, fenceMargin and retryEvery are the margins of the package doc.
func (s *Session) renewEvery() time.Duration  { return s.ttl / 3 }
func (s *Session) fenceMargin() time.Duration { return s.ttl / 3 }
func (s *Session) retryEvery() time.Duration  { return max(100*time.Millisecond, s.ttl/30) }

// fenceAt is when the session fences itself without a renewal.
func (s *Session) fenceAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline.Add(-s.fenceMargin())
}

// Alive returns nil while the session's lease is certain to live past the
// fence margin: what it locks may still be mounted.
func (s *Session) Alive() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced != nil {
		return s.fenced
	}
	if !time.Now().Before(s.deadline.Add(-s.fenceMargin())) {
		return fmt.Errorf("%w: %w: the lease was not renewed in time", errdefs.ErrUnavailable, ErrFenced)
	}
	return nil
}

// Deadline is when the lease may expire, as far as this process knows.
func (s *Session) Deadline() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deadline
}

// keepAlive renews the lease until Close, or until it cannot: then it says
// why.
func (s *Session) keepAlive() error {
	next := time.Now().Add(s.renewEvery())
	for {
		fenceAt := s.fenceAt()
		wake := next
		if fenceAt.Before(wake) {
			wake = fenceAt
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-s.stop:
			t.Stop()
			return nil
		case <-t.C:
		}
		if !time.Now().Before(fenceAt) {
			return fmt.Errorf("%w: etcd did not renew the lease for %s of its %s", ErrFenced, s.ttl-s.fenceMargin(), s.ttl)
		}
		sent := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), fenceAt)
		resp, err := s.c.etcd.KeepAliveOnce(ctx, s.lease)
		cancel()
		switch {
		case err == nil:
			s.mu.Lock()
			s.deadline = sent.Add(time.Duration(resp.TTL) * time.Second)
			s.mu.Unlock()
			next = sent.Add(s.renewEvery())
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			return fmt.Errorf("%w: etcd says the lease is gone", ErrFenced)
		default:
			next = time.Now().Add(s.retryEvery())
		}
	}
}

// doFence marks the session fenced and has its lock's holder stop, once.
func (s *Session) doFence(why error) {
	s.mu.Lock()
	s.fenced = fmt.Errorf("%w: %w", errdefs.ErrUnavailable, why)
	deadline, fence := s.deadline, s.fence
	s.mu.Unlock()
	if fence != nil {
		fence(s, why, deadline)
	}
}

// adopt makes fence the fence of a session granted ahead, if it is still
// sure to live past the fence margin; else it reports false.
func (s *Session) adopt(fence Fence) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fenced != nil || !time.Now().Before(s.deadline.Add(-s.fenceMargin())) {
		return false
	}
	s.fence = fence
	return true
}

// Abandon stops renewing the lease, which then expires by itself.
func (s *Session) Abandon() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// Close stops renewing and revokes the lease, which releases every lock
// bound to it. A lease that etcd cannot be told about expires by itself.
func (s *Session) Close(ctx context.Context) error {
	s.Abandon()
	return s.c.call(ctx, "revoke the lease", func(ctx context.Context) error {
		_, err := s.c.etcd.Revoke(ctx, s.lease)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil
		}
		return err
	})
}
