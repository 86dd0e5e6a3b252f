package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Stop is what the agent does when it fences a lock: stop the container
// and unmount the volume on this host, before deadline. It returns what it
// could not do.
type Stop func(why error, deadline time.Time) error

// Agent holds the cluster locks of a node's shims, one connection a lock
// (package cluster/hold). It keeps a client for each etcd it is asked to
// use, and a lease granted ahead for each: a lock then costs the shim one
// etcd transaction, not a dial and a grant. Each lock still has a lease of
// its own, so that one lock's fence, or its shim's death, is that lock's
// alone.
//
// A lock asked for ahead (by `shim start`, for the daemon it started) is
// parked until that daemon asks for it, for at most 30 s: it is then the
// daemon's, as if the daemon had taken it.
type Agent struct {
	stopFor func(context.Context, hold.Request) Stop
	log     io.Writer // of what no shim is told: a failed release, a fence

	mu     sync.Mutex
	pools  map[string]*pool    // by the [cluster] table
	parked map[string]*parking // by parkKey
	busy   int                 // connections and parked locks
	idle   chan struct{}       // signalled when busy drops to 0

	parkFor time.Duration // how long a lock taken ahead waits for its shim
}

// NewAgent returns an agent that stops a lock's container with the Stop
// that stopFor returns for its request; the context ends with the lock.
// What goes wrong with a lock after its shim stopped listening is written
// to log.
func NewAgent(stopFor func(context.Context, hold.Request) Stop, log io.Writer) *Agent {
	return &Agent{stopFor: stopFor, log: log, pools: map[string]*pool{}, parked: map[string]*parking{}, idle: make(chan struct{}, 1),
		parkFor: 30 * time.Second}
}

func (a *Agent) enter() {
	a.mu.Lock()
	a.busy++
	a.mu.Unlock()
}

func (a *Agent) leave() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busy--; a.busy == 0 {
		select {
		case a.idle <- struct{}{}:
		default:
		}
	}
}

// Serve serves each connection that l accepts, until no connection has
// been open and no lock parked for idle: then it closes l and returns.
func (a *Agent) Serve(l net.Listener, idle time.Duration) error {
	accepted := make(chan net.Conn)
	failed := make(chan error, 1)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				failed <- err
				return
			}
			a.enter() // before Serve may look at busy again
			accepted <- conn
		}
	}()
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case conn := <-accepted:
			go func() {
				defer a.leave()
				if err := a.Hold(conn, conn); err != nil && !errors.Is(err, ErrHeld) {
					a.logf("%v", err)
				}
				conn.Close()
			}()
		case err := <-failed:
			return err
		case <-a.idle:
			timer.Reset(idle)
		case <-timer.C:
			a.mu.Lock()
			busy := a.busy
			a.mu.Unlock()
			if busy > 0 {
				timer.Reset(idle)
				continue
			}
			l.Close()
			// A connection accepted meanwhile ends unanswered: its
			// shim connects again, to a new agent.
			for {
				select {
				case conn := <-accepted:
					conn.Close()
					a.leave()
				case err := <-failed:
					if errors.Is(err, net.ErrClosed) {
						return nil
					}
					return err
				}
			}
		}
	}
}

func (a *Agent) logf(format string, args ...any) {
	fmt.Fprintf(a.log, "%s %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// Close revokes the leases granted ahead and those of parked locks, and
// closes the clients.
func (a *Agent) Close() {
	a.mu.Lock()
	pools, parked := a.pools, a.parked
	a.pools, a.parked = map[string]*pool{}, map[string]*parking{}
	a.mu.Unlock()
	for _, p := range parked {
		if p.timer.Stop() {
			<-p.done
			if p.l != nil {
				p.l.end()
			}
		}
	}
	for _, p := range pools {
		p.close()
	}
}

// Hold holds one volume's lock for a shim, over the connection of package
// hold: the request and the shim's questions come from in, the answers go
// to out. It takes the lock bound to a lease of its own (or the one taken
// ahead for the request), and keeps the lease alive until the shim
// releases the lock. The stop that stopFor returns for the request is
// called once, when it fences (the lease could not be renewed in time) or
// when in ends without a release after the shim asked "alive" (it died,
// and may have left the volume mounted), and then returns. Only a release,
// a fence whose stop did all it had to, or the end of a shim that never
// asked "alive" revokes the lease: else it expires by itself, or persistctl
// gc releases the lock.
//
// A request marked Ahead is answered with nothing: its lock is parked for
// the shim whose request names the same volume, container and PID.
func (a *Agent) Hold(in io.Reader, out io.Writer) error {
	return a.hold(in, out, a.stopFor)
}

func (a *Agent) hold(in io.Reader, out io.Writer, stopFor func(context.Context, hold.Request) Stop) error {
	w := &replier{w: out}
	sc := bufio.NewScanner(in)
	if !sc.Scan() {
		err := errors.New("no request: the cluster agent is asked by the shim")
		w.send(hold.ErrorMessage(err))
		return err
	}
	var req hold.Request
	if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
		err = fmt.Errorf("%w: cluster lock request: %w", errdefs.ErrInvalidArgument, err)
		w.send(hold.ErrorMessage(err))
		return err
	}
	if req.Ahead {
		return a.park(req, stopFor)
	}
	l := a.claim(req)
	if l == nil {
		var err error
		if l, err = a.take(req, stopFor); err != nil {
			w.send(hold.ErrorMessage(err))
			return err
		}
	}
	if err := l.answerTo(w); err != nil {
		w.send(hold.ErrorMessage(err))
		return <-l.fenced
	}
	w.send(hold.Message{Token: l.lock.Token})
	return l.serve(sc)
}

// held is one volume's lock, and what the agent does with it.
type held struct {
	req    hold.Request
	key    string
	pool   *pool
	sess   *Session
	lock   *Lock
	stop   Stop
	cancel context.CancelFunc // of the stop's watch

	stopOnce sync.Once
	stopped  bool
	fenced   chan error // once it fenced

	mu sync.Mutex
	w  *replier // where its shim listens; nil while parked
}

// take takes req's lock.
func (a *Agent) take(req hold.Request, stopFor func(context.Context, hold.Request) Stop) (*held, error) {
	ctx := context.Background() // each call to etcd is bounded by ConnectTimeout
	p, err := a.pool(req)
	if err != nil {
		return nil, err
	}
	l := &held{req: req, key: p.c.Key(req.Namespace, req.Tenant, req.Volume), pool: p, fenced: make(chan error, 1)}
	var watch context.Context
	watch, l.cancel = context.WithCancel(ctx)
	l.stop = stopFor(watch, req)
	if l.sess, err = p.session(ctx, l.fence); err != nil {
		l.cancel()
		return nil, err
	}
	l.lock, err = l.sess.Lock(ctx, l.key, req.Holder)
	if err != nil {
		l.end()
		return nil, err
	}
	recordFence(req, l.lock.Token)
	return l, nil
}

// recordFence records the lock's fencing token in the volume, if it exists
// already, so that its shim need not wait for the record on the start's
// path. What fails here the shim does again, and reports.
func recordFence(req hold.Request, token int64) {
	if req.Dir == "" {
		return
	}
	if _, err := os.Stat(req.Dir); err != nil {
		return // a new volume: the shim records it once it is made
	}
	volumes.RecordFence(req.Dir, volumes.Fence{Token: token, Node: req.Node, Container: req.Container, At: req.Since})
}

// answerTo makes w where l's messages go, unless its lease may be lost.
func (l *held) answerTo(w *replier) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.sess.Alive(); err != nil {
		return err
	}
	l.w = w
	return nil
}

// fence is l's session's fence: stop the container, tell the shim, and
// revoke the lease if it did all it had to.
func (l *held) fence(s *Session, why error, deadline time.Time) {
	var serr error
	l.stopOnce.Do(func() { l.stopped, serr = true, l.stop(why, deadline) })
	m := hold.Message{Fenced: fmt.Sprintf("%s: %v", l.key, why), Left: time.Until(deadline)}
	if serr != nil {
		m.FenceError = serr.Error()
	}
	l.mu.Lock()
	w := l.w
	l.mu.Unlock()
	if w != nil {
		w.send(m) // first: the shim releases the rest of the container's storage
	}
	var rerr error
	if serr == nil {
		// Tell etcd, if it answers; else the lease expires by itself.
		if err := s.Close(context.Background()); err != nil {
			rerr = fmt.Errorf("revoke the lost lease: %w", err)
		}
	}
	l.cancel()
	l.fenced <- fmt.Errorf("fence: %s: %w", l.key, errors.Join(why, serr, rerr))
}

// end deletes l's lock, and gives its lease back to the pool: nothing was
// mounted under it, or it is unmounted.
func (l *held) end() error {
	defer l.cancel()
	ctx := context.Background()
	if l.lock == nil { // it was refused
		l.pool.giveBack(l.sess)
		return nil
	}
	if err := l.sess.Unlock(ctx, l.lock); err != nil {
		return errors.Join(err, l.sess.Close(ctx)) // the lease's revoke deletes it
	}
	l.pool.giveBack(l.sess)
	return nil
}

// serve answers the shim's questions until it releases the lock, ends, or
// the lock fences.
func (l *held) serve(sc *bufio.Scanner) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	asked := false // whether the shim may have mounted the volume
	for {
		select {
		case err := <-l.fenced:
			return err
		case line, ok := <-lines:
			switch {
			case !ok && !asked:
				// The shim never asked "alive", which it does
				// right before it mounts: nothing was mounted
				// under this lock. A shim that died before its
				// Create, or a lock taken ahead that its Create
				// did not use.
				return l.end()
			case !ok:
				why := fmt.Errorf("the shim (pid %d) of container %s ended without releasing %s", l.req.PID, l.req.Container, l.key)
				var err error
				l.stopOnce.Do(func() { l.stopped, err = true, l.stop(why, l.sess.Deadline()) })
				if !l.stopped {
					return <-l.fenced // a fence stopped it first
				}
				// Not revoked: the lease expires by itself, or
				// persistctl gc releases the lock.
				l.sess.Abandon()
				l.cancel()
				return errors.Join(why, err)
			case line == "alive":
				asked = true
				l.mu.Lock()
				w := l.w
				l.mu.Unlock()
				if err := l.sess.Alive(); err != nil {
					w.send(hold.ErrorMessage(err))
				} else {
					w.send(hold.Message{Alive: true})
				}
			case line == "release":
				// The shim unmounted the volume: revoking the lease
				// deletes the lock.
				l.mu.Lock()
				w := l.w
				l.mu.Unlock()
				if err := l.end(); err != nil {
					w.send(hold.ErrorMessage(err))
					return fmt.Errorf("release %s: %w", l.key, err)
				}
				w.send(hold.Message{Released: true})
				return nil
			}
		}
	}
}

// replier writes one Message a line, from any goroutine.
type replier struct {
	mu sync.Mutex
	w  io.Writer
}

func (r *replier) send(m hold.Message) {
	b, _ := json.Marshal(m)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.w.Write(append(b, '\n')) // a shim that is gone reads nothing
}
