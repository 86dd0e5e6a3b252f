package hold

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// agentEnv makes this test binary, run by Connect as
// `<bin> cluster agent --socket S`, a fake agent that serves one lock.
const agentEnv = "HOLD_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) != "" {
		l, err := net.Listen("unix", os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		conn, err := l.Accept()
		if err == nil {
			fakeAgent(conn, "serve")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeAgent answers one lock's connection as mode says.
func fakeAgent(conn net.Conn, mode string) {
	defer conn.Close()
	in := bufio.NewScanner(conn)
	out := json.NewEncoder(conn)
	in.Scan() // the request
	switch mode {
	case "refuse":
		out.Encode(ErrorMessage(fmt.Errorf("%w: %w by node node-a (container a1)", errdefs.ErrFailedPrecondition, ErrHeld)))
		return
	case "die":
		out.Encode(Message{Token: 7})
		in.Scan() // alive, never answered
		return
	case "fence":
		out.Encode(Message{Token: 7})
		in.Scan() // alive
		out.Encode(Message{Fenced: "etcd did not renew the lease", Left: 1000})
		return
	}
	out.Encode(Message{Token: 7})
	for in.Scan() {
		switch in.Text() {
		case "alive":
			out.Encode(Message{Alive: true})
		case "release":
			out.Encode(Message{Released: true})
			return
		}
	}
}

// listenAgent listens where an agent would, for a fake one in this
// process.
func listenAgent(t *testing.T) (string, net.Listener) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), Socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return socket, l
}

// start has a fake agent in this process, doing mode, take a lock; lost
// receives what lost is called with.
func start(t *testing.T, mode string) (*Lock, chan error, error) {
	t.Helper()
	socket, l := listenAgent(t)
	go func() {
		if conn, err := l.Accept(); err == nil {
			fakeAgent(conn, mode)
		}
	}()
	lost := make(chan error, 1)
	p, err := Start("/nonexistent/persistctl", socket, Request{Holder: Holder{Node: "node-b"}}, func(why error, m Message) {
		if m.Fenced != "" {
			why = fmt.Errorf("%w (reported)", why)
		}
		lost <- why
	})
	return p, lost, err
}

// A connection that the agent drops unanswered, as one closing when idle
// does, is asked again.
func TestUnansweredIsAskedAgain(t *testing.T) {
	socket, l := listenAgent(t)
	go func() {
		if conn, err := l.Accept(); err == nil {
			conn.Close()
		}
		if conn, err := l.Accept(); err == nil {
			fakeAgent(conn, "serve")
		}
	}()
	p, err := Start("/nonexistent/persistctl", socket, Request{Holder: Holder{Node: "node-b"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Token != 7 {
		t.Errorf("token %d", p.Token)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
}

// With no agent serving the socket, Start starts one, and waits for it.
func TestStartStartsTheAgent(t *testing.T) {
	t.Setenv(agentEnv, "1")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := Start(bin, filepath.Join(dir, Socket), Request{Holder: Holder{Node: "node-b"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Token != 7 {
		t.Errorf("token %d", p.Token)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LogFile)); err != nil {
		t.Errorf("the agent's log: %v", err)
	}
}

// An agent that cannot be started says so, naming the binary.
func TestStartWithoutAnAgent(t *testing.T) {
	_, err := Start("/nonexistent/persistctl", filepath.Join(t.TempDir(), Socket), Request{Holder: Holder{Node: "node-b"}}, nil)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "/nonexistent/persistctl") {
		t.Fatalf("start without persistctl: %v", err)
	}
}

// A refusal keeps its text and its classes across the pipe.
func TestRefusalKeepsItsClasses(t *testing.T) {
	_, _, err := start(t, "refuse")
	if !errors.Is(err, ErrHeld) || !errdefs.IsFailedPrecondition(err) || errdefs.IsUnavailable(err) {
		t.Fatalf("refusal: %v", err)
	}
	if want := "failed precondition: volume is held in the cluster by node node-a (container a1)"; err.Error() != want {
		t.Errorf("refusal reads %q, want %q", err, want)
	}
}

// A holder released by the shim is not lost.
func TestReleasedHolderIsNotLost(t *testing.T) {
	p, _, err := start(t, "serve")
	if err != nil {
		t.Fatal(err)
	}
	if p.Token != 7 {
		t.Errorf("token %d", p.Token)
	}
	if err := p.Alive(); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if p.lost {
		t.Error("a released holder was taken as lost")
	}
}

// A holder that ends unasked, or reports a fence, is lost: the shim stops
// the container, and asks no more of it.
func TestEndedHolderIsLost(t *testing.T) {
	for _, mode := range []string{"die", "fence"} {
		t.Run(mode, func(t *testing.T) {
			p, lost, err := start(t, mode)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Alive(); err == nil { // answered by the fence report, or by nothing
				t.Error("alive when the holder fenced or ended")
			}
			why := <-lost
			if !errors.Is(why, ErrFenced) {
				t.Errorf("lost because %v", why)
			}
			if reported := strings.HasSuffix(why.Error(), "(reported)"); reported != (mode == "fence") {
				t.Errorf("a fence report handed over: %v, want %v: %v", reported, mode == "fence", why)
			}
			if err := p.Alive(); !errors.Is(err, ErrFenced) || !errdefs.IsUnavailable(err) {
				t.Errorf("alive after the holder ended: %v", err)
			}
			if err := p.Release(); err != nil {
				t.Errorf("release after the holder ended: %v", err)
			}
		})
	}
}
