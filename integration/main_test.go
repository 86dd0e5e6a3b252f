// Package integration tests the shim against a real containerd and runc,
// through ctr, with real mounts, loop devices and filesystems.
//
// TestMain builds the shim, starts a private containerd with it on its PATH
// and imports two versions of a busybox test image. Every test works in its
// own state dir and backends and checks, when it ends, that nothing of its
// containers is left: no mount, loop device, lock, journal or scratch file.
package integration

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

const (
	runtimeName   = "io.containerd.persist.v1"
	fpRuntimeName = "io.containerd.persist-fp.v1" // the shim's failpoint build
	namespace     = "persist-test"
	image1        = "docker.io/library/persist-test:1"
	image2        = "docker.io/library/persist-test:2"
)

// daemon is the containerd that TestMain started for all tests.
var daemon struct {
	*containerdtest.Daemon
	dir     string // its root, state, sockets, log
	address string
	ctr     string // the ctr binary
	bin     string // our built binaries
	repo    string
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getuid() != 0 {
		if testenv.CI() {
			fmt.Fprintln(os.Stderr, "integration tests need root, and CI is set: refusing to skip them")
			return 1
		}
		fmt.Println("integration tests need root; each test will skip")
		return m.Run()
	}
	if err := setUp(); err != nil {
		fmt.Fprintln(os.Stderr, "set up:", err)
		tearDown(true)
		return 1
	}
	code := m.Run()
	tearDown(code != 0)
	return code
}

func setUp() error {
	repo, err := containerdtest.Repo()
	if err != nil {
		return err
	}
	tools, err := containerdtest.FindTools()
	if err != nil {
		return err
	}
	// Short: shim socket paths under it must fit in 42 characters.
	dir, err := os.MkdirTemp("/tmp", "persist-it-")
	if err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	// PERSIST_TEST_BIN names a directory where the three binaries below are
	// built already: make vm-test builds them on the host, not in the VM.
	prebuilt := os.Getenv("PERSIST_TEST_BIN")
	if prebuilt != "" {
		bin = prebuilt
	}
	daemon.Daemon = &containerdtest.Daemon{Dir: dir, Repo: repo, Tools: tools, ShimDir: bin}
	daemon.dir, daemon.address, daemon.ctr, daemon.bin, daemon.repo = dir, daemon.Address(), tools.Ctr(), bin, repo
	// The release shim, and its test build that honours the failpoint
	// annotation (runtime fpRuntimeName).
	if prebuilt == "" {
		if err := containerdtest.Build(repo, bin, nil, "containerd-shim-persist-v1", "containerd-shim-persist-fp-v1", "persistctl"); err != nil {
			return err
		}
	}
	var tars []string
	for i, name := range []string{image1, image2} {
		tar := filepath.Join(dir, "images", fmt.Sprintf("image%d.tar", i+1))
		if err := containerdtest.BuildImage(repo, tar, name, fmt.Sprint(i+1)); err != nil {
			return err
		}
		tars = append(tars, tar)
	}
	if err := startDaemon(); err != nil {
		return err
	}
	for _, ns := range []string{namespace, namespace + "-2"} {
		if err := daemon.Import(ns, tars...); err != nil {
			return err
		}
	}
	return nil
}

// startDaemon starts the test containerd, with the built shim on its PATH.
func startDaemon() error { return daemon.Start() }

// tearDown stops containerd by its PID and removes its directory. The log is
// printed only when something failed.
func tearDown(failed bool) {
	if daemon.Daemon == nil {
		return
	}
	if log := daemon.Log(); failed && log != "" {
		fmt.Fprintf(os.Stderr, "--- containerd log ---\n%s\n", log)
	}
	if err := daemon.Remove(); err != nil {
		fmt.Fprintln(os.Stderr, "remove the test containerd:", err)
	}
}

// command runs a command in dir; its error holds the output.
func command(dir, name string, args ...string) error { return containerdtest.Run(dir, name, args...) }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
