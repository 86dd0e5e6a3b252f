package hold

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The agent's files, in its directory of the state dir (state.Dir.Cluster).
const (
	Socket   = "agent.sock"
	LockFile = "agent.lock" // flocked by the one agent, which writes its PID in it
	LogFile  = "agent.log"
)

// startWait bounds how long Connect waits for an agent it started to
// serve: a fresh process, whose binary may not be in the page cache yet,
// on a loaded or slow host. Under qemu's emulation a first start took more
// than 10 s.
const startWait = 30 * time.Second

// Connect connects to the agent at socket, starting one with bin
// (persistctl) when none serves there. Agents that start at once, for
// shims that start at once, settle it between them: all but the one that
// takes the lock file exit.
func Connect(bin, socket string) (net.Conn, error) {
	if conn, err := net.Dial("unix", socket); err == nil {
		return conn, nil
	}
	if bin == "" {
		return nil, fmt.Errorf("%w: no cluster agent serves %s, and persistctl, which is one, is neither beside the shim nor on PATH: install it",
			errdefs.ErrFailedPrecondition, socket)
	}
	dir := filepath.Dir(socket)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "cluster", "agent", "--socket", socket)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: it outlives this shim, and what is sent to the
	// shim's group is not for it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: start the cluster agent %s: %w", errdefs.ErrFailedPrecondition, bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait() // a shim's reaper may reap it first: its error says nothing
		close(exited)
	}()
	deadline := time.Now().Add(startWait)
	for {
		conn, err := net.Dial("unix", socket)
		if err == nil {
			return conn, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: the cluster agent did not serve %s within %s; see %s: %w",
				errdefs.ErrUnavailable, socket, startWait, filepath.Join(dir, LogFile), err)
		}
		select {
		case <-exited:
			// It lost the race to another agent, which serves soon,
			// or it failed: its log says why.
			exited = nil
		case <-time.After(time.Millisecond):
		}
	}
}

// StopAgent stops the agent of dir, if one runs, by the PID in its lock
// file, and waits until it is gone. An agent that still holds locks drops
// them as a dead one would: their containers are stopped. For tests and
// benchmarks, which must not leave an agent behind.
func StopAgent(dir string) error {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return nil // no agent holds it: the PID in it is stale
	}
	var pid int
	if _, err := fmt.Fscan(f, &pid); err != nil || pid <= 0 {
		return fmt.Errorf("the cluster agent's lock file %s names no PID", f.Name())
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil {
		return fmt.Errorf("stop the cluster agent %d: %w", pid, err)
	}
	// Gone when its lock is free.
	deadline := time.Now().Add(startWait)
	for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster agent %d still runs %s after SIGTERM", pid, startWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// Ahead asks the agent at socket, if one serves there, to take reqs' locks
// ahead of the shim that will ask for them (each with Ahead set), and does
// not wait for it: the shim's own request takes the lock, or waits for it.
func Ahead(socket string, reqs []Request) error {
	var errs []error
	for _, req := range reqs {
		req.Ahead = true
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return err // none serves: the shim starts one
		}
		_, err = conn.Write(append(b, '\n'))
		errs = append(errs, err, conn.Close())
	}
	return errors.Join(errs...)
}
