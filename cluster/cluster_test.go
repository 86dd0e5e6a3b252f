package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/internal/etcdtest"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

const testTTL = 3 * time.Second

// startEtcd starts a private etcd for t, stopped by its PID when t ends.
func startEtcd(t *testing.T) *etcdtest.Server {
	t.Helper()
	if _, err := etcdtest.Binary(); err != nil {
		testenv.Skip(t, "needs an etcd server", err.Error())
	}
	srv, err := etcdtest.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

func dial(t *testing.T, endpoint, node string) *Client {
	t.Helper()
	c, err := Dial(Options{Endpoints: []string{endpoint}, Node: node, TTL: testTTL, Prefix: "/test/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fenceRecorder records a session's fence.
type fenceRecorder struct {
	mu       sync.Mutex
	why      error
	at       time.Time
	deadline time.Time
	done     chan struct{}
}

func newFenceRecorder() *fenceRecorder { return &fenceRecorder{done: make(chan struct{})} }

func (f *fenceRecorder) fence(_ *Session, why error, deadline time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.why != nil {
		panic("fenced twice")
	}
	f.why, f.at, f.deadline = why, time.Now(), deadline
	close(f.done)
}

func grant(t *testing.T, c *Client, fence Fence) *Session {
	t.Helper()
	s, err := c.Grant(context.Background(), fence)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func holder(node string) Holder {
	return Holder{Node: node, Namespace: "default", Volume: "db", Backend: "shared", Container: "c-" + node, PID: 1, Since: time.Now()}
}

func TestLockIsExclusiveAcrossNodes(t *testing.T) {
	srv := startEtcd(t)
	a, b := dial(t, srv.Endpoint, "node-a"), dial(t, srv.Endpoint, "node-b")
	sa, sb := grant(t, a, nil), grant(t, b, nil)
	key := a.Key("default", "", "db")
	if key != b.Key("default", "", "db") || key != "/test/volumes/default/db" {
		t.Fatalf("key %q", key)
	}
	la, err := sa.Lock(context.Background(), key, holder("node-a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = sb.Lock(context.Background(), key, holder("node-b"))
	if !errors.Is(err, ErrHeld) || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "node node-a (container c-node-a") {
		t.Fatalf("second lock: %v, want held by node node-a", err)
	}
	// Another tenant's volume of the same name is another lock.
	if _, err := sb.Lock(context.Background(), b.Key("default", "team", "db"), holder("node-b")); err != nil {
		t.Fatalf("lock of another tenant's volume: %v", err)
	}
	held, err := b.Holders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by key: "@team" before "db".
	if len(held) != 2 || held[1].Key != key || held[1].Holder.Node != "node-a" || held[1].Token != la.Token || held[1].Lease != sa.Lease() || held[1].TTL <= 0 {
		t.Fatalf("holders %+v", held)
	}
	if err := sa.Unlock(context.Background(), la); err != nil {
		t.Fatal(err)
	}
	lb, err := sb.Lock(context.Background(), key, holder("node-b"))
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	if lb.Token <= la.Token {
		t.Errorf("token %d after %d: fencing tokens must grow", lb.Token, la.Token)
	}
}

func TestUnlockLeavesALaterHolder(t *testing.T) {
	srv := startEtcd(t)
	a, b := dial(t, srv.Endpoint, "node-a"), dial(t, srv.Endpoint, "node-b")
	sa, sb := grant(t, a, nil), grant(t, b, nil)
	key := a.Key("default", "", "db")
	la, err := sa.Lock(context.Background(), key, holder("node-a"))
	if err != nil {
		t.Fatal(err)
	}
	// node-a's lock is lost (as to an expired lease), and node-b takes it.
	if err := b.Release(context.Background(), key, la.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Lock(context.Background(), key, holder("node-b")); err != nil {
		t.Fatal(err)
	}
	if err := sa.Unlock(context.Background(), la); err != nil {
		t.Fatal(err)
	}
	held, err := a.Holders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Holder.Node != "node-b" {
		t.Fatalf("node-a's late unlock removed node-b's lock: %+v", held)
	}
}

// A holder that dies (stops renewing without revoking) keeps the volume
// until its lease expires; then another node takes it.
func TestDeadHolderReleasesAtLeaseExpiry(t *testing.T) {
	srv := startEtcd(t)
	a, b := dial(t, srv.Endpoint, "node-a"), dial(t, srv.Endpoint, "node-b")
	fa := newFenceRecorder()
	sa, sb := grant(t, a, fa.fence), grant(t, b, nil)
	key := a.Key("default", "", "db")
	if _, err := sa.Lock(context.Background(), key, holder("node-a")); err != nil {
		t.Fatal(err)
	}
	sa.Abandon() // dies: no renewal, no revoke
	<-sa.done
	if _, err := sb.Lock(context.Background(), key, holder("node-b")); !errors.Is(err, ErrHeld) {
		t.Fatalf("lock right after node-a died: %v, want held", err)
	}
	var err error
	for end := time.Now().Add(4 * testTTL); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if _, err = sb.Lock(context.Background(), key, holder("node-b")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("node-b could not lock after node-a's lease expired: %v", err)
	}
}

// etcd gone: the holder fences itself before its lease can expire, and
// refuses new locks.
func TestFenceBeforeLeaseExpires(t *testing.T) {
	srv := startEtcd(t)
	a := dial(t, srv.Endpoint, "node-a")
	fa := newFenceRecorder()
	sa := grant(t, a, fa.fence)
	if _, err := sa.Lock(context.Background(), a.Key("default", "", "db"), holder("node-a")); err != nil {
		t.Fatal(err)
	}
	if err := sa.Alive(); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	select {
	case <-fa.done:
	case <-time.After(4 * testTTL):
		t.Fatal("no fence after etcd stopped")
	}
	if !errors.Is(fa.why, ErrFenced) {
		t.Errorf("fenced because %v", fa.why)
	}
	// The safety property, on the monotonic clock: the fence starts with
	// at least the margin left before the lease may expire.
	if left := fa.deadline.Sub(fa.at); left < sa.fenceMargin()-50*time.Millisecond {
		t.Errorf("fenced %s before the lease may expire; the margin is %s", left, sa.fenceMargin())
	}
	if err := sa.Alive(); !errors.Is(err, ErrFenced) || !errdefs.IsUnavailable(err) {
		t.Errorf("Alive after the fence: %v", err)
	}
	if _, err := sa.Lock(context.Background(), a.Key("default", "", "other"), holder("node-a")); !errors.Is(err, ErrFenced) {
		t.Errorf("lock after the fence: %v", err)
	}
}

// A lease revoked behind the holder's back fences it at the next renewal.
func TestFenceWhenLeaseIsGone(t *testing.T) {
	srv := startEtcd(t)
	a := dial(t, srv.Endpoint, "node-a")
	fa := newFenceRecorder()
	sa := grant(t, a, fa.fence)
	if _, err := a.etcd.Revoke(context.Background(), sa.lease); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fa.done:
	case <-time.After(4 * testTTL):
		t.Fatal("no fence after the lease was revoked")
	}
	if !strings.Contains(fa.why.Error(), "lease is gone") {
		t.Errorf("fenced because %v", fa.why)
	}
}

func TestUnreachable(t *testing.T) {
	srv, err := etcdtest.New(t.TempDir()) // ports picked, never started
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, srv.Endpoint, "node-a")
	_, err = c.Grant(context.Background(), nil)
	if !errors.Is(err, ErrUnreachable) || !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Fatalf("grant without etcd: %v", err)
	}
}
