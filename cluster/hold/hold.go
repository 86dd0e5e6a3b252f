// Package hold is the pipe between a shim and the node's cluster agent,
// `persistctl cluster agent`, which holds cluster volumes' locks for the
// shims: the shim's side (Start, Alive, Release), how it finds or starts
// the agent, and the messages both sides write.
//
// The agent dials etcd, takes the locks, keeps their leases alive and
// fences by itself; the shim never links the etcd client, which would add
// to the start of every shim, cluster or not. One agent serves every shim
// of a state dir, on a unix socket in it: it keeps its connection to etcd
// and a lease granted ahead, so that a lock costs one etcd transaction, not
// a process, a dial and a grant. This package must not import etcd, nor
// package cluster, which does.
//
// Each volume's lock is one connection to the agent. The shim writes a
// Request as its first line, then "alive" or "release" lines; the agent
// answers each with one Message line, the first being the lock's fencing
// token or why it was refused. A Message with Fenced set comes unasked, when
// the agent fenced the lock; the connection then ends. The end of the
// connection without "release" is the shim's death: if the shim asked
// "alive", which it does right before it mounts the volume, the agent
// fences; if it never did, nothing was mounted under the lock, and the
// agent releases it.
package hold

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/containerd/errdefs"
)

var (
	// ErrHeld is returned when another holder has a volume's lock.
	ErrHeld = errors.New("volume is held in the cluster")
	// ErrUnreachable is returned when etcd does not answer in time.
	ErrUnreachable = errors.New("etcd cannot be reached")
	// ErrFenced is returned when the agent could not renew a lock's lease
	// in time and fenced it, or when the lock's connection ended unasked.
	ErrFenced = errors.New("lost the cluster lease")
)

// Holder is who holds a volume's lock: the value of its key in etcd.
type Holder struct {
	Node      string    `json:"node"`
	Namespace string    `json:"namespace"`
	Tenant    string    `json:"tenant,omitempty"`
	Volume    string    `json:"volume"`
	Backend   string    `json:"backend"`
	Container string    `json:"container"`
	PID       int       `json:"pid"` // of the shim
	Since     time.Time `json:"since"`
}

// Request is what the shim asks the agent: take the lock of one volume,
// for one container.
type Request struct {
	// The [cluster] table, but for the node, which is the Holder's.
	Endpoints []string      `json:"endpoints"`
	CAFile    string        `json:"ca_file,omitempty"`
	CertFile  string        `json:"cert_file,omitempty"`
	KeyFile   string        `json:"key_file,omitempty"`
	TTL       time.Duration `json:"ttl"`

	// The volume and who holds it.
	Holder

	// What the agent stops when it fences: the container whose bundle
	// holds init.pid, and the volume's mount on this host.
	Bundle string `json:"bundle"`
	Mount  string `json:"mount"`

	// Dir is the volume's directory. If it exists, the agent records the
	// lock's fencing token in it (volumes.RecordFence) before it answers
	// with the token, off the start's path: the shim finds it there.
	Dir string `json:"dir,omitempty"`

	// Ahead asks for the lock ahead of the shim's own request, which
	// claims it: `shim start` sends it for the daemon it started (PID),
	// and reads no answer. A lock no request claims is released.
	Ahead bool `json:"ahead,omitempty"`
}

// Message is one line of the agent's answer.
type Message struct {
	Token    int64 `json:"token,omitempty"` // the lock is taken: its fencing token
	Alive    bool  `json:"alive,omitempty"`
	Released bool  `json:"released,omitempty"`

	Error   string   `json:"error,omitempty"`
	Classes []string `json:"classes,omitempty"` // of Error: errors.Is works on the shim's side

	// Fenced says why the agent fenced; FenceError what it could not
	// stop, and Left how long before the lease's deadline it was done.
	Fenced     string        `json:"fenced,omitempty"`
	FenceError string        `json:"fence_error,omitempty"`
	Left       time.Duration `json:"left,omitempty"`
}

// classes are the error classes that cross the pipe.
var classes = []struct {
	name string
	err  error
}{
	{"failed-precondition", errdefs.ErrFailedPrecondition},
	{"unavailable", errdefs.ErrUnavailable},
	{"invalid-argument", errdefs.ErrInvalidArgument},
	{"not-found", errdefs.ErrNotFound},
	{"held", ErrHeld},
	{"unreachable", ErrUnreachable},
	{"fenced", ErrFenced},
}

// ErrorMessage is the Message of err, with its classes.
func ErrorMessage(err error) Message {
	m := Message{Error: err.Error()}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			m.Classes = append(m.Classes, c.name)
		}
	}
	return m
}

// remoteError is an error that the agent sent: its text, and its classes.
type remoteError struct {
	msg     string
	classes []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.classes }

// Err is the error of m, nil when it has none.
func (m Message) Err() error {
	if m.Error == "" {
		return nil
	}
	e := &remoteError{msg: m.Error}
	for _, c := range classes {
		for _, name := range m.Classes {
			if name == c.name {
				e.classes = append(e.classes, c.err)
			}
		}
	}
	return e
}

// Lock is one volume's lock held by the agent, as the shim sees it.
type Lock struct {
	Token int64 // of the lock

	wait    time.Duration // for an answer
	conn    net.Conn
	mu      sync.Mutex // one question at a time
	replies chan Message
	done    chan struct{} // the agent's answers ended

	// lostOnce is taken by Release, or by the end of the agent's answers
	// when it was not released: lost is called only then.
	lostOnce sync.Once
	lost     bool // it was lost (or refused): set before done is closed
	relMu    sync.Mutex
	armMu    sync.Mutex
	onLost   func(error, Message) // set once the lock is held
}

// Start has the agent at socket take req's lock, starting the agent with
// bin (persistctl) if none serves there, and returns once the lock is
// held; else the error says why (the holding node, or that etcd cannot be
// reached). lost is called once, in its own goroutine, if the agent fences
// the lock or its connection ends without a release: the container must
// stop.
func Start(bin, socket string, req Request, lost func(why error, m Message)) (*Lock, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	p, err := ask(bin, socket, b, req.TTL)
	if errors.Is(err, errUnanswered) {
		// An agent that closes when idle drops what it accepted as it
		// closes: ask the next one.
		p, err = ask(bin, socket, b, req.TTL)
	}
	if err != nil {
		return nil, err
	}
	// Armed only now: a lock that was refused stops nothing. An agent
	// that ends before this is seen by the next question.
	p.armMu.Lock()
	p.onLost = lost
	p.armMu.Unlock()
	return p, nil
}

// errUnanswered is the error of a question whose connection closed before
// an answer.
var errUnanswered = errors.New("the cluster agent closed the lock's connection without an answer")

// ask connects to the agent and asks it for one lock.
func ask(bin, socket string, req []byte, ttl time.Duration) (_ *Lock, retErr error) {
	conn, err := Connect(bin, socket)
	if err != nil {
		return nil, err
	}
	p := &Lock{
		// Its calls to etcd are bounded: grant and lock take at most
		// two of min(5 s, TTL/3).
		wait: ttl + 5*time.Second,
		conn: conn, replies: make(chan Message, 4), done: make(chan struct{}),
	}
	go p.read()
	defer func() {
		if retErr != nil {
			p.conn.Close() // the agent releases what it may have taken
			<-p.done
		}
	}()
	m, err := p.ask(append(req, '\n'))
	if err != nil {
		return nil, err
	}
	p.Token = m.Token
	return p, nil
}

// read routes the agent's messages until its answers end.
func (p *Lock) read() {
	lose := func(why error, m Message) {
		p.lostOnce.Do(func() {
			p.lost = true
			p.armMu.Lock()
			lost := p.onLost
			p.armMu.Unlock()
			if lost != nil {
				go lost(why, m)
			}
		})
	}
	sc := bufio.NewScanner(p.conn)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not of the protocol
		}
		if m.Fenced != "" {
			// At once: the agent may still try to revoke its lease.
			lose(Message{Error: m.Fenced, Classes: []string{"fenced"}}.Err(), m)
			continue
		}
		p.replies <- m
	}
	close(p.replies)
	lose(fmt.Errorf("%w: the cluster agent (persistctl cluster agent) closed the lock's connection", ErrFenced), Message{})
	close(p.done)
}

// ask writes line and waits for the answer.
func (p *Lock) ask(line []byte) (Message, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.conn.Write(line); err != nil {
		return Message{}, fmt.Errorf("%w: %w: %w: %w", errdefs.ErrUnavailable, ErrFenced, errUnanswered, err)
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case m, ok := <-p.replies:
		if !ok {
			return m, fmt.Errorf("%w: %w: %w; its errors are in %s", errdefs.ErrUnavailable, ErrFenced, errUnanswered, LogFile)
		}
		return m, m.Err()
	case <-t.C:
		p.conn.Close()
		return Message{}, fmt.Errorf("%w: the cluster agent did not answer within %s; dropped the lock's connection", errdefs.ErrUnavailable, p.wait)
	}
}

// Alive returns nil while the lock's lease is certain to live past the
// fence margin: the volume may be mounted.
func (p *Lock) Alive() error {
	_, err := p.ask([]byte("alive\n"))
	return err
}

// Release has the agent unlock the volume, which must be unmounted here
// already, and waits until it has (or, etcd away, gave up: the lock then
// goes when its lease expires).
func (p *Lock) Release() error {
	return p.release(true)
}

// ReleaseAsync has the agent unlock the volume, which must be unmounted
// here already, and returns once it is asked: the agent logs what it could
// not do. A shim's delete does not wait for etcd.
func (p *Lock) ReleaseAsync() {
	p.release(false)
}

func (p *Lock) release(wait bool) error {
	p.relMu.Lock()
	defer p.relMu.Unlock()
	p.lostOnce.Do(func() {})
	defer p.conn.Close()
	if p.lost {
		return nil // it fenced, or ended, already
	}
	if !wait {
		p.mu.Lock()
		defer p.mu.Unlock()
		_, err := p.conn.Write([]byte("release\n"))
		return err
	}
	_, err := p.ask([]byte("release\n"))
	return err
}
