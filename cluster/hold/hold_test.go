package hold

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// fakeEnv makes this test binary a fake holder, doing what it names.
const fakeEnv = "HOLD_TEST_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		fakeHolder(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeHolder(mode string) {
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
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

// start runs this test binary as a fake holder doing mode; lost receives
// what lost is called with.
func start(t *testing.T, mode string) (*Process, chan error, error) {
	t.Helper()
	t.Setenv(fakeEnv, mode)
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan error, 1)
	p, err := Start(bin, Request{Node: "node-b"}, func(why error, m Message) {
		if m.Fenced != "" {
			why = fmt.Errorf("%w (reported)", why)
		}
		lost <- why
	})
	return p, lost, err
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
