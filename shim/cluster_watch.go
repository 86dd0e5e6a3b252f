package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// watchdog is `persistctl cluster watch`, run beside each cluster volume
// this shim attaches. The lease that holds the volume ends with this shim;
// the container does not. If the shim dies (with containerd, so nobody runs
// `shim delete`), the watchdog sees its stdin close and stops the container
// and unmounts the volume, so that the node that takes the volume when the
// lease expires finds nobody still writing it.
type watchdog struct {
	started chan struct{}
	err     error
	cmd     *exec.Cmd
	in      io.WriteCloser
}

// persistctlPath finds persistctl: beside the shim, else on PATH.
func persistctlPath() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "persistctl")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("persistctl")
	if err != nil {
		return "", errors.New("cluster backends need persistctl beside the shim or on PATH: it stops a container whose shim dies; install it")
	}
	return p, nil
}

// startWatchdog starts the watchdog of the volume mounted at mount for the
// container of bundle, in the background: ready waits for it.
func startWatchdog(bundle, mount string) *watchdog {
	w := &watchdog{started: make(chan struct{})}
	go func() {
		defer close(w.started)
		bin, err := persistctlPath()
		if err != nil {
			w.err = err
			return
		}
		w.cmd = exec.Command(bin, "cluster", "watch", "--bundle", bundle, "--mount", mount)
		w.cmd.Stderr = os.Stderr
		// Its own session: what is sent to the shim's group is not for it.
		w.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if w.in, err = w.cmd.StdinPipe(); err != nil {
			w.err = err
			return
		}
		if err := w.cmd.Start(); err != nil {
			w.err = fmt.Errorf("start the cluster watchdog: %w", err)
			return
		}
		// The shim's reaper may reap it first: Wait's error says nothing.
		go w.cmd.Wait()
	}()
	return w
}

// ready waits until the watchdog runs.
func (w *watchdog) ready() error {
	<-w.started
	return w.err
}

// release ends the watch: the volume is released.
func (w *watchdog) release() {
	if w.ready() != nil {
		return
	}
	io.WriteString(w.in, "release\n")
	w.in.Close()
}
