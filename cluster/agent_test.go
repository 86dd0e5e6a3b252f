package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/internal/etcdtest"
)

// pipeHolder runs Hold in this process, as persistctl cluster hold does,
// with a pipe for each direction.
type pipeHolder struct {
	in   *io.PipeWriter
	out  *bufio.Scanner
	done chan error // Hold's result

	mu      sync.Mutex
	stopped []string // why stop was called
}

func startHold(t *testing.T, endpoint, node, container string) *pipeHolder {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &pipeHolder{in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	go func() {
		err := Hold(inR, outW, func(req hold.Request) Stop {
			return func(why error, deadline time.Time) error {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.stopped = append(h.stopped, why.Error())
				return nil
			}
		})
		outW.Close()
		h.done <- err
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	req := hold.Request{
		Endpoints: []string{endpoint}, Node: node, TTL: testTTL,
		Namespace: "default", Volume: "db", Backend: "shared", Container: container, PID: 1, Since: time.Now(),
	}
	b, _ := json.Marshal(req)
	h.send(t, string(b))
	return h
}

func (h *pipeHolder) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (h *pipeHolder) read(t *testing.T) hold.Message {
	t.Helper()
	if !h.out.Scan() {
		t.Fatal("the holder ended without an answer")
	}
	var m hold.Message
	if err := json.Unmarshal(h.out.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (h *pipeHolder) stops() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopped
}

// A holder takes the lock, answers alive, and revokes its lease on release;
// another node's holder is refused with the holder named and the error's
// classes intact across the pipe.
func TestHoldLockAliveRelease(t *testing.T) {
	srv := startEtcd(t)
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	m := a.read(t)
	if m.Err() != nil || m.Token == 0 {
		t.Fatalf("node-a's holder: %+v", m)
	}
	b := startHold(t, srv.Endpoint, "node-b", "b1")
	err := b.read(t).Err()
	if !errors.Is(err, ErrHeld) || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "node node-a (container a1") {
		t.Fatalf("node-b's holder while node-a holds the lock: %v", err)
	}
	if err := <-b.done; !errors.Is(err, ErrHeld) {
		t.Errorf("node-b's holder returned %v", err)
	}
	a.send(t, "alive")
	if m := a.read(t); !m.Alive {
		t.Fatalf("alive: %+v", m)
	}
	a.send(t, "release")
	if m := a.read(t); !m.Released {
		t.Fatalf("release: %+v", m)
	}
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	if s := a.stops(); len(s) > 0 {
		t.Errorf("a released holder stopped the container: %v", s)
	}
	c := startHold(t, srv.Endpoint, "node-b", "b2")
	if m := c.read(t); m.Err() != nil || m.Token <= 0 {
		t.Fatalf("node-b after node-a released: %+v", m)
	}
}

// A shim that ends without a release (it died) has its holder stop the
// container; the lock stays until its lease expires, or gc releases it.
func TestHoldStopsWhenTheShimEnds(t *testing.T) {
	srv := startEtcd(t)
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	if m := a.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	a.in.Close()
	if err := <-a.done; err == nil || !strings.Contains(err.Error(), "ended without releasing") {
		t.Errorf("holder returned %v", err)
	}
	if s := a.stops(); len(s) != 1 || !strings.Contains(s[0], "the shim (pid 1) of container a1 ended") {
		t.Errorf("stops: %v", s)
	}
	c, err := Dial(Options{Endpoints: []string{srv.Endpoint}, Node: "node-a", TTL: testTTL}) // the holder's prefix
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := c.Holders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Holder.Container != "a1" || held[0].TTL <= 0 {
		t.Errorf("the lock of a holder whose shim ended: %+v", held)
	}
}

// etcd away: the holder fences, stops the container before the lease's
// deadline and tells the shim, unasked.
func TestHoldFences(t *testing.T) {
	srv := startEtcd(t)
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	if m := a.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	srv.Stop()
	m := a.read(t)
	if m.Fenced == "" || m.Left < testTTL/3-100*time.Millisecond || m.FenceError != "" {
		t.Fatalf("fence report: %+v", m)
	}
	// The lost lease cannot be revoked with etcd away.
	if err := <-a.done; !errors.Is(err, ErrFenced) || !errors.Is(err, ErrUnreachable) {
		t.Errorf("holder returned %v", err)
	}
	if s := a.stops(); len(s) != 1 {
		t.Errorf("stops: %v", s)
	}
}

// No etcd: the shim is told so, within the connect timeout, as Unavailable.
func TestHoldUnreachable(t *testing.T) {
	srv, err := etcdtest.New(t.TempDir()) // ports picked, never started
	if err != nil {
		t.Fatal(err)
	}
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	err = a.read(t).Err()
	if !errors.Is(err, ErrUnreachable) || !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Fatalf("holder without etcd: %v", err)
	}
}
