// Package hold is the pipe between a shim and the process that holds a
// cluster volume's lock for it, `persistctl cluster hold`: the shim's side
// (Start, Alive, Release) and the messages both sides write.
//
// The holder dials etcd, takes the lock, keeps its lease alive and fences by
// itself; the shim never links the etcd client, which would add to the start
// of every shim, cluster or not. This package must not import etcd, nor
// package cluster, which does.
//
// The shim writes a Request as the holder's first line of stdin, then
// "alive" or "release" lines; the holder answers each with one Message line
// on its stdout, the first being the lock's fencing token or why it was
// refused. A Message with Fenced set comes unasked, when the holder fenced
// itself; the holder then ends. The holder takes the end of its stdin
// without "release" as the shim's death, and fences.
package hold

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

var (
	// ErrHeld is returned when another holder has a volume's lock.
	ErrHeld = errors.New("volume is held in the cluster")
	// ErrUnreachable is returned when etcd does not answer in time.
	ErrUnreachable = errors.New("etcd cannot be reached")
	// ErrFenced is returned by a holder that could not renew its lease in
	// time and fenced itself, or that ended unasked.
	ErrFenced = errors.New("lost the cluster lease")
)

// Request is what the shim asks its holder: take the lock of one volume,
// for one container.
type Request struct {
	// The [cluster] table.
	Endpoints []string      `json:"endpoints"`
	CAFile    string        `json:"ca_file,omitempty"`
	CertFile  string        `json:"cert_file,omitempty"`
	KeyFile   string        `json:"key_file,omitempty"`
	Node      string        `json:"node"`
	TTL       time.Duration `json:"ttl"`

	// The volume and who holds it.
	Namespace string    `json:"namespace"`
	Tenant    string    `json:"tenant,omitempty"`
	Volume    string    `json:"volume"`
	Backend   string    `json:"backend"`
	Container string    `json:"container"`
	PID       int       `json:"pid"` // of the shim
	Since     time.Time `json:"since"`

	// What the holder stops when it fences: the container whose bundle
	// holds init.pid, and the volume's mount on this host.
	Bundle string `json:"bundle"`
	Mount  string `json:"mount"`
}

// Message is one line of the holder's answer.
type Message struct {
	Token    int64 `json:"token,omitempty"` // the lock is taken: its fencing token
	Alive    bool  `json:"alive,omitempty"`
	Released bool  `json:"released,omitempty"`

	Error   string   `json:"error,omitempty"`
	Classes []string `json:"classes,omitempty"` // of Error: errors.Is works on the shim's side

	// Fenced says why the holder fenced; FenceError what it could not
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

// remoteError is an error that the holder sent: its text, and its classes.
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

// Process is a running holder, as the shim sees it.
type Process struct {
	Token int64 // of the lock it holds

	wait    time.Duration // for an answer
	cmd     *exec.Cmd
	mu      sync.Mutex // one question at a time
	in      *os.File
	replies chan Message
	done    chan struct{} // its output ended

	// lostOnce is taken by Release, or by the end of the holder's output
	// when it was not released: lost is called only then.
	lostOnce sync.Once
	lost     bool // it was lost (or refused): set before done is closed
	relMu    sync.Mutex
	armMu    sync.Mutex
	onLost   func(error, Message) // set once the lock is held
}

// Start runs bin (persistctl) as the holder of req's lock, and returns once
// it holds it; else the error says why (the holding node, or that etcd
// cannot be reached). lost is called once, in its own goroutine, if the
// holder fences or ends without being released: the container must stop.
func Start(bin string, req Request, lost func(why error, m Message)) (_ *Process, retErr error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	cmd := exec.Command(bin, "cluster", "hold")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	// Its own session: what is sent to the shim's group is not for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start the cluster lock holder %s: %w", bin, err)
	}
	// A shim's reaper may reap it first: Wait's error says nothing.
	go cmd.Wait()
	p := &Process{
		// Its calls to etcd are bounded: dial, grant and lock take at
		// most three of min(5 s, TTL/3).
		wait: req.TTL + 5*time.Second,
		cmd:  cmd, in: inW, replies: make(chan Message, 4), done: make(chan struct{}),
	}
	go p.read(outR)
	defer func() {
		if retErr != nil {
			p.in.Close() // it ends on its own
			<-p.done
		}
	}()
	m, err := p.ask(append(b, '\n'))
	if err != nil {
		return nil, err
	}
	p.Token = m.Token
	// Armed only now: a holder that refused the lock, and ends, stops
	// nothing. One that ends before this is seen by the next question.
	p.armMu.Lock()
	p.onLost = lost
	p.armMu.Unlock()
	return p, nil
}

// read routes the holder's messages until its output ends.
func (p *Process) read(out *os.File) {
	defer out.Close()
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
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var m Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // not of the protocol
		}
		if m.Fenced != "" {
			// At once: the holder may still try to revoke its lease.
			lose(Message{Error: m.Fenced, Classes: []string{"fenced"}}.Err(), m)
			continue
		}
		p.replies <- m
	}
	close(p.replies)
	lose(fmt.Errorf("%w: its holder (persistctl cluster hold, pid %d) ended", ErrFenced, p.cmd.Process.Pid), Message{})
	close(p.done)
}

// ask writes line and waits for the answer.
func (p *Process) ask(line []byte) (Message, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.in.Write(line); err != nil {
		return Message{}, fmt.Errorf("%w: %w: the cluster lock holder is gone: %w", errdefs.ErrUnavailable, ErrFenced, err)
	}
	t := time.NewTimer(p.wait)
	defer t.Stop()
	select {
	case m, ok := <-p.replies:
		if !ok {
			return m, fmt.Errorf("%w: %w: the cluster lock holder ended without an answer; its errors are in the shim's log", errdefs.ErrUnavailable, ErrFenced)
		}
		return m, m.Err()
	case <-t.C:
		p.cmd.Process.Kill()
		return Message{}, fmt.Errorf("%w: the cluster lock holder did not answer within %s; killed it", errdefs.ErrUnavailable, p.wait)
	}
}

// Alive returns nil while the lock's lease is certain to live past the
// fence margin: the volume may be mounted.
func (p *Process) Alive() error {
	_, err := p.ask([]byte("alive\n"))
	return err
}

// Release has the holder unlock the volume, which must be unmounted here
// already, and waits until it has (or, etcd away, gave up: the lock then
// goes when its lease expires).
func (p *Process) Release() error {
	p.relMu.Lock()
	defer p.relMu.Unlock()
	p.lostOnce.Do(func() {})
	if p.lost {
		p.in.Close()
		return nil // it fenced, or ended, already
	}
	_, err := p.ask([]byte("release\n"))
	p.in.Close()
	return err
}

// Pid is the holder's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
