// Package etcdtest runs a private etcd server for tests: on 127.0.0.1, on
// free ports, with its data in a directory of the test's, stopped by its
// PID. It uses the etcd that scripts/install-deps.sh installs (Debian's
// etcd-server), or ETCD if set.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Server is a private etcd. Make it with New, then Start it.
type Server struct {
	Dir      string // data and log
	Endpoint string // http://127.0.0.1:PORT
	peer     string
	cmd      *exec.Cmd
	exited   chan struct{}
}

// New picks two free ports for an etcd whose data lives in dir.
func New(dir string) (*Server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	return &Server{Dir: dir, Endpoint: "http://127.0.0.1:" + client, peer: "http://127.0.0.1:" + peer}, nil
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// Binary is the etcd server to run.
func Binary() (string, error) {
	if p := os.Getenv("ETCD"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", errors.New("no etcd server: run scripts/install-deps.sh (Debian's etcd-server), or set ETCD")
	}
	return p, nil
}

// Start starts etcd, on the same ports and data as before if it ran, and
// returns once it is healthy.
func (s *Server) Start() error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	log, err := os.OpenFile(filepath.Join(s.Dir, "etcd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	s.cmd = exec.Command(bin, "--name", "test", "--data-dir", filepath.Join(s.Dir, "data"),
		"--listen-client-urls", s.Endpoint, "--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", s.peer, "--initial-advertise-peer-urls", s.peer,
		"--initial-cluster", "test="+s.peer)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.exited:
			return fmt.Errorf("etcd exited at start: %s", s.Log())
		default:
		}
		resp, err := http.Get(s.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	s.Stop()
	return fmt.Errorf("etcd did not become healthy in 20 s: %s", s.Log())
}

// PID is the running server's process, 0 when stopped.
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server by its PID and waits for it to exit. A server that
// is not running is success.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Log is what the server logged.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "etcd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
