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
	"os/exec"
	"path/filepath"
	"testing"
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
		if os.Getenv("CI") != "" {
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
	repo, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	daemon.repo = repo
	tools := envOr("TOOLS_DIR", "/var/cache/containerd-persist/tools")
	daemon.ctr = filepath.Join(tools, "containerd-"+envOr("CONTAINERD_VERSION", "v2.4.2"), "ctr")
	if _, err := os.Stat(daemon.ctr); err != nil {
		return fmt.Errorf("ctr not found (%v): run scripts/install-deps.sh or make test", err)
	}
	// Short: shim socket paths under it must fit in 42 characters.
	if daemon.dir, err = os.MkdirTemp("/tmp", "persist-it-"); err != nil {
		return err
	}
	daemon.address = filepath.Join(daemon.dir, "containerd.sock")
	daemon.bin = filepath.Join(daemon.dir, "bin")
	// The release shim, and its test build that honours the failpoint
	// annotation (runtime fpRuntimeName).
	for _, cmd := range []string{"containerd-shim-persist-v1", "containerd-shim-persist-fp-v1", "persistctl"} {
		if err := command(repo, "go", "build", "-o", filepath.Join(daemon.bin, cmd), "./cmd/"+cmd); err != nil {
			return err
		}
	}
	images := filepath.Join(daemon.dir, "images")
	for i, name := range []string{image1, image2} {
		tar := filepath.Join(images, fmt.Sprintf("image%d.tar", i+1))
		if err := os.MkdirAll(images, 0o700); err != nil {
			return err
		}
		if err := command(repo, "scripts/build-image.sh", tar, name, fmt.Sprint(i+1)); err != nil {
			return err
		}
	}
	if err := startDaemon(); err != nil {
		return err
	}
	for i := range 2 {
		tar := filepath.Join(images, fmt.Sprintf("image%d.tar", i+1))
		for _, ns := range []string{namespace, namespace + "-2"} {
			if out, err := ctr(ns, "images", "import", tar); err != nil {
				return fmt.Errorf("import %s: %v: %s", tar, err, out)
			}
		}
	}
	return nil
}

// startDaemon starts the test containerd, with the built shim on its PATH.
func startDaemon() error {
	cmd := exec.Command(filepath.Join(daemon.repo, "scripts/containerd.sh"), "start", daemon.dir)
	cmd.Env = append(os.Environ(), "SHIM_DIR="+daemon.bin, "BIN_DIR="+filepath.Dir(daemon.ctr))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start containerd: %v: %s", err, out)
	}
	return nil
}

// tearDown stops containerd by its PID and removes its directory. The log is
// printed only when something failed.
func tearDown(failed bool) {
	if daemon.dir == "" {
		return
	}
	if failed {
		if log, err := os.ReadFile(filepath.Join(daemon.dir, "containerd.log")); err == nil {
			fmt.Fprintf(os.Stderr, "--- containerd log ---\n%s\n", log)
		}
	}
	if err := command(daemon.repo, "scripts/containerd.sh", "stop", daemon.dir); err != nil {
		fmt.Fprintln(os.Stderr, "stop containerd:", err)
		return
	}
	unmountUnder(daemon.dir)
	if err := os.RemoveAll(daemon.dir); err != nil {
		fmt.Fprintln(os.Stderr, "remove", daemon.dir, err)
	}
}

func command(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
