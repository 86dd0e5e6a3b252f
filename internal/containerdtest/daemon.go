//go:build linux

package containerdtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Daemon is a private containerd. Set the fields, then Start it.
type Daemon struct {
	// Dir holds the daemon's root, state, sockets, config, log and pid
	// file. Keep it short: shim sockets go under it only when their path
	// fits containerd's limit of 42 characters.
	Dir   string
	Repo  string // the repository, for scripts/
	Tools Tools
	// ShimDir, when set, is searched first on the daemon's PATH: the shim
	// under test.
	ShimDir string
	// Env is more environment for scripts/containerd.sh, like CRI=1 or
	// CONFIG_EXTRA=file.
	Env []string
}

// Address is the daemon's gRPC socket.
func (d *Daemon) Address() string { return filepath.Join(d.Dir, "containerd.sock") }

// Start starts the daemon and returns once it serves.
func (d *Daemon) Start() error { return d.script("start") }

// Stop stops the daemon by its PID. A daemon that is not running is
// success.
func (d *Daemon) Stop() error { return d.script("stop") }

func (d *Daemon) script(verb string) error {
	cmd := exec.Command(filepath.Join(d.Repo, "scripts/containerd.sh"), verb, d.Dir)
	cmd.Env = append(os.Environ(), "BIN_DIR="+d.Tools.Containerd, "RUNC_DIR="+d.Tools.Runc,
		"CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	if d.ShimDir != "" {
		cmd.Env = append(cmd.Env, "SHIM_DIR="+d.ShimDir)
	}
	cmd.Env = append(cmd.Env, d.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s containerd in %s: %w: %s", verb, d.Dir, err, out)
	}
	return nil
}

// Log is what the daemon logged; empty if it never started.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "containerd.log"))
	return string(b)
}

// PID is the daemon's process, 0 when its pid file is gone.
func (d *Daemon) PID() int {
	b, err := os.ReadFile(filepath.Join(d.Dir, "containerd.pid"))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}

// Ctr is a ctr command against the daemon in namespace ns.
func (d *Daemon) Ctr(ctx context.Context, ns string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.Tools.Ctr(), append([]string{"-a", d.Address(), "-n", ns}, args...)...)
	cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	return cmd
}

// CtrOutput runs ctr in namespace ns and returns what it printed.
func (d *Daemon) CtrOutput(ns string, args ...string) (string, error) {
	out, err := d.Ctr(context.Background(), ns, args...).CombinedOutput()
	return string(out), err
}

// Import imports the image tars into namespace ns.
func (d *Daemon) Import(ns string, tars ...string) error {
	for _, tar := range tars {
		if out, err := d.CtrOutput(ns, "images", "import", tar); err != nil {
			return fmt.Errorf("import %s: %w: %s", tar, err, out)
		}
	}
	return nil
}

// Remove stops the daemon, unmounts whatever is still mounted under Dir,
// and removes Dir unless something there stays mounted.
func (d *Daemon) Remove() error {
	if d.Dir == "" {
		return nil
	}
	if err := d.Stop(); err != nil {
		return err
	}
	return RemoveAll(d.Dir)
}

// RemoveAll unmounts, deepest first and by path, whatever is mounted at or
// under dir, then removes dir; when a mount stays, dir stays too, so that
// the removal cannot reach into a mounted filesystem.
func RemoveAll(dir string) error {
	err := UnmountAll(dir)
	if left, lerr := MountsUnder(dir); lerr != nil || len(left) > 0 {
		return errors.Join(err, lerr, fmt.Errorf("%s still has mounts %q: not removed", dir, left))
	}
	return errors.Join(err, os.RemoveAll(dir))
}

// Repo finds the repository from the working directory: go test and go run
// both run somewhere inside it.
func Repo() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod above %s: run it from the repository", dir)
		}
	}
}

// Build builds the repository's commands, by name under cmd/, into dir,
// with go build's flags (like -trimpath).
func Build(repo, dir string, flags []string, cmds ...string) error {
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", dir+"/")
	for _, c := range cmds {
		args = append(args, "./cmd/"+c)
	}
	return Run(repo, "go", args...)
}

// BuildImage writes the busybox test image named name as an OCI layout tar,
// with scripts/build-image.sh; args are the script's own after those two.
func BuildImage(repo, tar, name string, args ...string) error {
	if err := os.MkdirAll(filepath.Dir(tar), 0o700); err != nil {
		return err
	}
	return Run(repo, filepath.Join(repo, "scripts/build-image.sh"), append([]string{tar, name}, args...)...)
}

// Run runs a command in dir and returns an error with its output when it
// fails.
func Run(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}
