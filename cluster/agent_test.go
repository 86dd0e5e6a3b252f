package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/internal/etcdtest"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// pipeHolder runs an agent's Hold in this process, as persistctl cluster
// agent does for each connection, with a pipe for each direction.
type pipeHolder struct {
	in   *io.PipeWriter
	out  *bufio.Scanner
	done chan error // Hold's result

	mu      sync.Mutex
	stopped []string // why stop was called
}

func startHold(t *testing.T, endpoint, node, container string) *pipeHolder {
	t.Helper()
	return startHoldOn(t, nil, endpoint, node, container)
}

// startHoldOn is startHold on agent a, or on an agent of its own.
func startHoldOn(t *testing.T, a *Agent, endpoint, node, container string) *pipeHolder {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h := &pipeHolder{in: inW, out: bufio.NewScanner(outR), done: make(chan error, 1)}
	if a == nil {
		a = NewAgent(h.stopFor, io.Discard)
		t.Cleanup(a.Close)
	}
	go func() {
		err := a.hold(inR, outW, h.stopFor)
		outW.Close()
		h.done <- err
	}()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	req := hold.Request{
		Endpoints: []string{endpoint}, TTL: testTTL,
		Holder: hold.Holder{Node: node, Namespace: "default", Volume: "db", Backend: "shared", Container: container, PID: 1, Since: time.Now()},
	}
	b, _ := json.Marshal(req)
	h.send(t, string(b))
	return h
}

func (h *pipeHolder) stopFor(context.Context, hold.Request) Stop {
	return func(why error, deadline time.Time) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.stopped = append(h.stopped, why.Error())
		return nil
	}
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

// A shim that ends without a release (it died) after it asked "alive", and
// may have mounted the volume, has the agent stop the container; the lock
// stays until its lease expires, or gc releases it.
func TestHoldStopsWhenTheShimEnds(t *testing.T) {
	srv := startEtcd(t)
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	if m := a.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	a.send(t, "alive")
	if m := a.read(t); !m.Alive {
		t.Fatalf("alive: %+v", m)
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

// A shim that ends without ever asking "alive" mounted nothing under its
// lock (it died before its Create, or the lock was taken ahead for a
// Create that did not use it): the agent releases the lock, and stops
// nothing.
func TestHoldReleasesWhenTheShimNeverAsked(t *testing.T) {
	srv := startEtcd(t)
	a := startHold(t, srv.Endpoint, "node-a", "a1")
	if m := a.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	a.in.Close()
	if err := <-a.done; err != nil {
		t.Errorf("holder returned %v", err)
	}
	if s := a.stops(); len(s) > 0 {
		t.Errorf("stopped a container that was never given the volume: %v", s)
	}
	b := startHold(t, srv.Endpoint, "node-b", "b1")
	if m := b.read(t); m.Err() != nil || m.Token <= 0 {
		t.Fatalf("node-b after node-a's shim ended unasked: %+v", m)
	}
}

// The agent records the fencing token in an existing volume before it
// answers with it; a volume not made yet is left to the shim.
func TestAgentRecordsTheFence(t *testing.T) {
	srv := startEtcd(t)
	var stops pipeHolder
	a := NewAgent(stops.stopFor, io.Discard)
	t.Cleanup(a.Close)
	dir := t.TempDir()
	for i, d := range []string{dir, filepath.Join(dir, "not-made")} {
		req := hold.Request{
			Endpoints: []string{srv.Endpoint}, TTL: testTTL,
			Holder: hold.Holder{Node: "node-a", Namespace: "default", Volume: fmt.Sprint("v", i), Backend: "shared", Container: "a1", PID: 1, Since: time.Now()},
			Dir:    d,
		}
		b, _ := json.Marshal(req)
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go a.Hold(inR, outW)
		t.Cleanup(func() { inW.Close(); outR.Close() })
		inW.Write(append(b, '\n'))
		sc := bufio.NewScanner(outR)
		if !sc.Scan() {
			t.Fatal("no answer")
		}
		var m hold.Message
		json.Unmarshal(sc.Bytes(), &m)
		f, err := volumes.ReadFence(d)
		if i == 0 && (err != nil || f.Token != m.Token || f.Node != "node-a") {
			t.Errorf("fence of an existing volume: %+v, %v; token %d", f, err, m.Token)
		}
		if _, err := os.Stat(d); i == 1 && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the agent made the directory of a volume not made yet: %v", err)
		}
	}
}

// An agent binds each lock to a lease of its own, granted ahead for the
// next lock once the first is taken.
func TestAgentGrantsAhead(t *testing.T) {
	srv := startEtcd(t)
	var stops pipeHolder
	a := NewAgent(stops.stopFor, io.Discard)
	t.Cleanup(a.Close)
	h1 := startHoldOn(t, a, srv.Endpoint, "node-a", "a1")
	if m := h1.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	var spare *Session
	for range 500 {
		if spare = a.spare(); spare != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if spare == nil {
		t.Fatal("no lease was granted ahead after the first lock")
	}
	h2 := startHoldOn(t, a, srv.Endpoint, "node-a", "a2")
	m := h2.read(t)
	if m.Err() == nil {
		t.Fatal("a second lock of one volume was taken")
	}
	// The refused lock gave its lease back: the next takes a new one.
	c, err := Dial(Options{Endpoints: []string{srv.Endpoint}, Node: "node-a", TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := c.Holders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Holder.Container != "a1" || held[0].Lease == spare.Lease() {
		t.Errorf("locks: %+v; the spare lease %d", held, spare.Lease())
	}
	h1.send(t, "release")
	if m := h1.read(t); !m.Released {
		t.Fatalf("release: %+v", m)
	}
	h3 := startHoldOn(t, a, srv.Endpoint, "node-a", "a3")
	if m := h3.read(t); m.Err() != nil {
		t.Fatal(m.Err())
	}
	if held, err = c.Holders(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(held) != 1 || held[0].Holder.Container != "a3" {
		t.Errorf("locks after a3 took it: %+v", held)
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

// spare is a spare lease of one of the agent's pools, if any.
func (a *Agent) spare() *Session {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.pools {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.spares); n > 0 {
			return p.spares[n-1]
		}
	}
	return nil
}

// holdAhead sends an ahead request to agent a, as shim start does, and
// returns once the agent has handled it.
func holdAhead(t *testing.T, a *Agent, endpoint, container string, pid int) {
	t.Helper()
	req := hold.Request{
		Endpoints: []string{endpoint}, TTL: testTTL,
		Holder: hold.Holder{Node: "node-a", Namespace: "default", Volume: "db", Backend: "shared", Container: container, PID: pid, Since: time.Now()},
		Ahead:  true,
	}
	b, _ := json.Marshal(req)
	var out strings.Builder
	if err := a.Hold(strings.NewReader(string(b)+"\n"), &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() > 0 {
		t.Errorf("an ahead request was answered: %s", out.String())
	}
}

// A lock taken ahead is the shim's that names the same container and PID:
// its request gets that lock, which held the volume meanwhile against
// every other; one that no shim claims is released.
func TestAgentParksLocksTakenAhead(t *testing.T) {
	srv := startEtcd(t)
	var stops pipeHolder
	a := NewAgent(stops.stopFor, io.Discard)
	t.Cleanup(a.Close)
	holdAhead(t, a, srv.Endpoint, "a1", 1)
	c, err := Dial(Options{Endpoints: []string{srv.Endpoint}, Node: "node-a", TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	held, err := c.Holders(t.Context())
	if err != nil || len(held) != 1 {
		t.Fatalf("locks after an ahead request: %+v, %v", held, err)
	}
	token := held[0].Token

	other := startHoldOn(t, a, srv.Endpoint, "node-a", "a2") // PID 1, another container
	if err := other.read(t).Err(); !errors.Is(err, ErrHeld) {
		t.Fatalf("another container while a1's lock is parked: %v", err)
	}
	claim := startHoldOn(t, a, srv.Endpoint, "node-a", "a1")
	if m := claim.read(t); m.Err() != nil || m.Token != token {
		t.Fatalf("claim: %+v, want token %d", m, token)
	}
	claim.send(t, "release")
	if m := claim.read(t); !m.Released {
		t.Fatalf("release: %+v", m)
	}

	// Unclaimed: released after parkFor.
	a.parkFor = 100 * time.Millisecond
	holdAhead(t, a, srv.Endpoint, "a3", 1)
	for range 500 {
		if held, err = c.Holders(t.Context()); err == nil && len(held) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(held) != 0 || err != nil {
		t.Errorf("an unclaimed lock was kept: %+v, %v", held, err)
	}
	if s := stops.stops(); len(s) > 0 {
		t.Errorf("stopped containers: %v", s)
	}
}

// An agent exits once idle, and not while it holds a lock.
func TestAgentServesUntilIdle(t *testing.T) {
	srv := startEtcd(t)
	var stops pipeHolder
	a := NewAgent(stops.stopFor, io.Discard)
	t.Cleanup(a.Close)
	socket := filepath.Join(t.TempDir(), hold.Socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(l, 300*time.Millisecond) }()
	p, err := hold.Start("", socket, hold.Request{
		Endpoints: []string{srv.Endpoint}, TTL: testTTL,
		Holder: hold.Holder{Node: "node-a", Namespace: "default", Volume: "db", Backend: "shared", Container: "a1", PID: 1, Since: time.Now()},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		t.Fatalf("the agent ended while it held a lock: %v", err)
	case <-time.After(time.Second):
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the agent still serves, idle")
	}
	if _, err := os.Stat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the idle agent's socket: %v", err)
	}
}

// A released lock's lease, still alive, is the next lock's: a lock costs
// one etcd write to take and one to release.
func TestAgentReusesReleasedLeases(t *testing.T) {
	srv := startEtcd(t)
	var stops pipeHolder
	a := NewAgent(stops.stopFor, io.Discard)
	t.Cleanup(a.Close)
	c, err := Dial(Options{Endpoints: []string{srv.Endpoint}, Node: "node-a", TTL: testTTL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var leases []int64
	for _, container := range []string{"a1", "a2"} {
		h := startHoldOn(t, a, srv.Endpoint, "node-a", container)
		if m := h.read(t); m.Err() != nil {
			t.Fatal(m.Err())
		}
		held, err := c.Holders(t.Context())
		if err != nil || len(held) != 1 {
			t.Fatalf("locks: %+v, %v", held, err)
		}
		leases = append(leases, held[0].Lease)
		h.send(t, "release")
		if m := h.read(t); !m.Released {
			t.Fatalf("release: %+v", m)
		}
		if held, err := c.Holders(t.Context()); err != nil || len(held) != 0 {
			t.Fatalf("locks after the release: %+v, %v", held, err)
		}
	}
	if leases[0] != leases[1] {
		t.Errorf("leases %v: the second lock did not reuse the first one's", leases)
	}
}
