package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
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
type Agent struct {
	stopFor func(context.Context, hold.Request) Stop
	log     io.Writer // of what no shim is told: a failed release, a fence

	mu    sync.Mutex
	pools map[string]*pool // by the [cluster] table
}

// NewAgent returns an agent that stops a lock's container with the Stop
// that stopFor returns for its request; the context ends with the lock.
// What goes wrong with a lock after its shim stopped listening is written
// to log.
func NewAgent(stopFor func(context.Context, hold.Request) Stop, log io.Writer) *Agent {
	return &Agent{stopFor: stopFor, log: log, pools: map[string]*pool{}}
}

// Serve serves each connection that l accepts, until none has been open
// for idle: then it closes l and returns.
func (a *Agent) Serve(l net.Listener, idle time.Duration) error {
	var mu sync.Mutex
	open, closing := 0, false
	timer := time.AfterFunc(idle, func() {
		mu.Lock()
		defer mu.Unlock()
		if open == 0 {
			closing = true
			l.Close()
		}
	})
	for {
		conn, err := l.Accept()
		mu.Lock()
		if closing {
			mu.Unlock()
			if conn != nil {
				conn.Close() // its shim connects again, to a new agent
			}
			return nil
		}
		if err != nil {
			mu.Unlock()
			return err
		}
		open++
		timer.Stop()
		mu.Unlock()
		go func() {
			if err := a.Hold(conn, conn); err != nil && !errors.Is(err, ErrHeld) {
				fmt.Fprintf(a.log, "%s %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
			}
			conn.Close()
			mu.Lock()
			if open--; open == 0 {
				timer.Reset(idle)
			}
			mu.Unlock()
		}()
	}
}

// Close revokes the leases granted ahead and closes the clients.
func (a *Agent) Close() {
	a.mu.Lock()
	pools := a.pools
	a.pools = map[string]*pool{}
	a.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
}

// Hold holds one volume's lock for a shim, over the connection of package
// hold: the request and the shim's questions come from in, the answers go
// to out. It takes the lock bound to a lease of its own, and keeps the
// lease alive until the shim releases the lock. The stop that stopFor
// returns for the request is called once, when it fences (the lease could
// not be renewed in time) or when in ends without a release after the shim
// asked "alive" (it died, and may have left the volume mounted), and then
// returns. Only a release, a fence whose stop did all it had to, or the end
// of a shim that never asked "alive" revokes the lease: else it expires by
// itself, or persistctl gc releases the lock.
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
	ctx := context.Background() // each call to etcd is bounded by ConnectTimeout
	p, err := a.pool(req)
	if err != nil {
		w.send(hold.ErrorMessage(err))
		return err
	}
	key := p.c.Key(req.Namespace, req.Tenant, req.Volume)
	held, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := stopFor(held, req)

	var stopOnce sync.Once
	stopped := false
	stopNow := func(why error, deadline time.Time) (err error) {
		stopOnce.Do(func() { stopped, err = true, stop(why, deadline) })
		return err
	}
	fenced := make(chan error, 1)
	sess, err := p.session(ctx, func(s *Session, why error, deadline time.Time) {
		var serr error
		stopOnce.Do(func() { serr = stop(why, deadline) })
		m := hold.Message{Fenced: fmt.Sprintf("%s: %v", key, why), Left: time.Until(deadline)}
		if serr != nil {
			m.FenceError = serr.Error()
		}
		w.send(m) // first: the shim releases the rest of the container's storage
		var rerr error
		if serr == nil {
			// Tell etcd, if it answers; else the lease expires by itself.
			if err := s.Close(ctx); err != nil {
				rerr = fmt.Errorf("revoke the lost lease: %w", err)
			}
		}
		fenced <- fmt.Errorf("fence: %s: %w", key, errors.Join(why, serr, rerr))
	})
	if err != nil {
		w.send(hold.ErrorMessage(err))
		return err
	}
	l, err := sess.Lock(ctx, key, Holder{
		Node: req.Node, Namespace: req.Namespace, Tenant: req.Tenant, Volume: req.Volume, Backend: req.Backend,
		Container: req.Container, PID: req.PID, Since: req.Since,
	})
	if err != nil {
		sess.Close(ctx)
		w.send(hold.ErrorMessage(err))
		return err
	}
	w.send(hold.Message{Token: l.Token})

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
		case err := <-fenced:
			return err
		case line, ok := <-lines:
			switch {
			case !ok && !asked:
				// The shim never asked "alive", which it does
				// right before it mounts: nothing was mounted
				// under this lock. A shim that died before its
				// Create, or a lock taken ahead that its Create
				// did not use.
				return sess.Close(ctx)
			case !ok:
				why := fmt.Errorf("the shim (pid %d) of container %s ended without releasing %s", req.PID, req.Container, key)
				err := stopNow(why, sess.Deadline())
				if !stopped {
					return <-fenced // a fence stopped it first
				}
				// Not revoked: the lease expires by itself, or
				// persistctl gc releases the lock.
				sess.Abandon()
				return errors.Join(why, err)
			case line == "alive":
				asked = true
				if err := sess.Alive(); err != nil {
					w.send(hold.ErrorMessage(err))
				} else {
					w.send(hold.Message{Alive: true})
				}
			case line == "release":
				// The shim unmounted the volume: revoking the lease
				// deletes the lock.
				if err := sess.Close(ctx); err != nil {
					w.send(hold.ErrorMessage(err))
					return err
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
