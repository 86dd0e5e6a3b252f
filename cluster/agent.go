package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
)

// Stop is what a holder does when it fences: stop the container and unmount
// the volume on this host, before deadline. It returns what it could not do.
type Stop func(why error, deadline time.Time) error

// Hold holds one volume's lock for a shim, over the pipe of package hold:
// the request and the shim's questions come from in, the answers go to out.
// It takes the lock bound to a lease of its own, and keeps the lease alive
// until the shim releases the lock. The stop that stopFor returns for the
// request is called once, when it fences (the
// lease could not be renewed in time) or when in ends without a release (the
// shim died), and then returns. Only a release, or a fence whose stop did
// all it had to, revokes the lease: else it expires by itself, or persistctl
// gc releases the lock.
func Hold(in io.Reader, out io.Writer, stopFor func(hold.Request) Stop) error {
	w := &replier{w: out}
	sc := bufio.NewScanner(in)
	if !sc.Scan() {
		err := errors.New("no request on stdin: persistctl cluster hold is run by the shim")
		w.send(hold.ErrorMessage(err))
		return err
	}
	var req hold.Request
	if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
		err = fmt.Errorf("%w: cluster hold request: %w", errdefs.ErrInvalidArgument, err)
		w.send(hold.ErrorMessage(err))
		return err
	}
	ctx := context.Background() // each call to etcd is bounded by ConnectTimeout
	c, err := Dial(Options{Endpoints: req.Endpoints, CAFile: req.CAFile, CertFile: req.CertFile, KeyFile: req.KeyFile, Node: req.Node, TTL: req.TTL})
	if err != nil {
		w.send(hold.ErrorMessage(err))
		return err
	}
	defer c.Close()
	key := c.Key(req.Namespace, req.Tenant, req.Volume)
	stop := stopFor(req)

	var stopOnce sync.Once
	stopped := false
	stopNow := func(why error, deadline time.Time) (err error) {
		stopOnce.Do(func() { stopped, err = true, stop(why, deadline) })
		return err
	}
	fenced := make(chan error, 1)
	sess, err := c.Grant(ctx, func(s *Session, why error, deadline time.Time) {
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
	for {
		select {
		case err := <-fenced:
			return err
		case line, ok := <-lines:
			switch {
			case !ok:
				why := fmt.Errorf("the shim (pid %d) of container %s ended without releasing %s", req.PID, req.Container, key)
				err := stopNow(why, sess.Deadline())
				if !stopped {
					return <-fenced // a fence stopped it first
				}
				// Not revoked: the lease expires by itself, or
				// persistctl gc releases the lock.
				return errors.Join(why, err)
			case line == "alive":
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
