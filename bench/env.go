package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

const (
	persistRuntime = "io.containerd.persist.v1"
	runcRuntime    = "io.containerd.runc.v2"
	imageName      = "docker.io/library/persist-bench:1"
)

// env is one bench run's world: a private containerd with the shim on its
// PATH, a config with a class per case, and a directory that holds all of
// it and is removed at the end.
type env struct {
	o        options
	repo     string
	dir      string // everything of this run
	ctdDir   string // containerd's root, state, sockets, log
	address  string
	ctr      string
	toolBin  string // containerd, ctr, containerd-shim-runc-v2
	runcDir  string
	config   string // the shim's config, one class per case
	stateDir string
	toolDir  string // holds iotool, bind-mounted into I/O containers
	client   *client.Client
	image    client.Image
	started  bool
}

func newEnv(ctx context.Context, o options, repo string) (*env, error) {
	e := &env{o: o, repo: repo}
	e.toolBin = filepath.Join(o.Tools, "containerd-v2.4.2")
	e.runcDir = filepath.Join(o.Tools, "runc-v1.4.3")
	e.ctr = filepath.Join(e.toolBin, "ctr")
	for _, p := range []string{e.ctr, filepath.Join(e.toolBin, "containerd"), filepath.Join(e.runcDir, "runc")} {
		if _, err := os.Stat(p); err != nil {
			return e, fmt.Errorf("%v: run scripts/install-deps.sh (make deps)", err)
		}
	}
	for _, b := range []string{"containerd-shim-persist-v1", "persistctl"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			return e, fmt.Errorf("%v: build it first (make build)", err)
		}
	}
	if err := os.MkdirAll(o.WorkParent, 0o755); err != nil {
		return e, err
	}
	dir, err := os.MkdirTemp(o.WorkParent, "persist-bench-")
	if err != nil {
		return e, err
	}
	e.dir = dir
	e.ctdDir = filepath.Join(dir, "ctd")
	e.address = filepath.Join(e.ctdDir, "containerd.sock")
	e.stateDir = filepath.Join(dir, "state")
	e.config = filepath.Join(dir, "persist.toml")
	e.toolDir = filepath.Join(dir, "tool")
	// The shim socket dir must fit containerd's limit, or shims share the
	// host's /run/containerd/s.
	if len(filepath.Join(e.ctdDir, "s")) > 42 {
		return e, fmt.Errorf("work directory %s is too long for containerd's shim sockets: pick a shorter -workdir", dir)
	}
	if err := os.WriteFile(e.config, []byte(shimConfig(dir)), 0o600); err != nil {
		return e, err
	}
	for _, b := range []string{"vol-dir", "vol-loop"} {
		if err := os.Mkdir(filepath.Join(dir, b), 0o700); err != nil {
			return e, err
		}
	}
	if err := e.cmd(ctx, "go", "build", "-trimpath", "-o", filepath.Join(e.toolDir, "iotool"), "./bench/iotool"); err != nil {
		return e, err
	}
	tar := filepath.Join(dir, "image.tar")
	if err := e.cmd(ctx, filepath.Join(repo, "scripts/build-image.sh"), tar, imageName); err != nil {
		return e, err
	}
	e.started = true
	if err := e.cmd(ctx, filepath.Join(repo, "scripts/containerd.sh"), "start", e.ctdDir); err != nil {
		return e, err
	}
	if out, err := e.ctrOut(ctx, "images", "import", tar); err != nil {
		return e, fmt.Errorf("import image: %v: %s", err, out)
	}
	if e.client, err = client.New(e.address, client.WithDefaultNamespace(o.Namespace)); err != nil {
		return e, err
	}
	if e.image, err = e.client.GetImage(ctx, imageName); err != nil {
		return e, err
	}
	return e, nil
}

// cmd runs a command in the repository with the bench's environment:
// containerd.sh finds the tools and the shim through it, and iotool is
// built static so it runs in a busybox image.
func (e *env) cmd(ctx context.Context, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = e.repo
	c.Env = append(os.Environ(), "BIN_DIR="+e.toolBin, "RUNC_DIR="+e.runcDir, "SHIM_DIR="+e.o.Bin,
		"CGO_ENABLED=0", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return nil
}

// ctrArgs are the arguments that point ctr at the bench's containerd.
func (e *env) ctrArgs(args ...string) []string {
	return append([]string{"-a", e.address, "-n", e.o.Namespace}, args...)
}

func (e *env) ctrOut(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, e.ctr, e.ctrArgs(args...)...)
	c.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	out, err := c.CombinedOutput()
	return string(out), err
}

// close removes every container, stops containerd by its PID, unmounts
// what is left under the directory by path, deepest first, and removes
// the directory only when nothing is mounted there any more.
func (e *env) close() error {
	if e.dir == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	if e.client != nil {
		errs = append(errs, e.removeContainers(ctx))
		e.client.Close()
	}
	if e.started {
		errs = append(errs, e.cmd(ctx, filepath.Join(e.repo, "scripts/containerd.sh"), "stop", e.ctdDir))
	}
	errs = append(errs, unmountUnder(e.dir))
	if left, err := mountsUnder(e.dir); err != nil || len(left) > 0 {
		errs = append(errs, fmt.Errorf("%s still has mounts %v (%v): not removed", e.dir, left, err))
	} else if err := os.RemoveAll(e.dir); err != nil {
		errs = append(errs, err)
	}
	// runc keeps per-namespace state beside the host's; only an empty
	// directory is removed.
	os.Remove(filepath.Join("/run/containerd/runc", e.o.Namespace))
	return errors.Join(errs...)
}

// removeContainers kills and deletes every container of the bench's
// namespace, whatever state a failure left it in.
func (e *env) removeContainers(ctx context.Context) error {
	cs, err := e.client.Containers(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, deleteContainer(ctx, c))
	}
	return errors.Join(errs...)
}

func deleteContainer(ctx context.Context, c client.Container) error {
	if t, err := c.Task(ctx, nil); err == nil {
		if ch, err := t.Wait(ctx); err == nil {
			if t.Kill(ctx, syscall.SIGKILL) == nil {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
		}
		if _, err := t.Delete(ctx); err != nil {
			return fmt.Errorf("delete task %s: %w", c.ID(), err)
		}
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, m := range ms {
		paths = append(paths, m.Mountpoint)
	}
	return paths, nil
}

// unmountUnder unmounts by path whatever is mounted under dir, deepest
// first. A busy mount is detached, so the directory never stays mounted.
func unmountUnder(dir string) error {
	paths, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(paths)))
	var errs []error
	for _, p := range paths {
		err := unix.Unmount(p, 0)
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(p, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// shimConfig is the shim's config for the bench: one selectable class per
// case, its state and backends under dir. Scratch and volume sizes leave
// room for the I/O runs.
func shimConfig(dir string) string {
	return fmt.Sprintf(`version = 1
state_dir = %q
default_class = "mem"

[backends.dir]
type = "dir"
path = %q

[backends.loop]
type = "loopfile"
path = %q
default_size = "1GiB"

[classes.mem]
mode = "immutable"
selectable = true
[[classes.mem.scratch]]
path = "/tmp"
medium = "memory"
size = "512MiB"

[classes.disk]
mode = "immutable"
selectable = true
[[classes.disk.scratch]]
path = "/tmp"
medium = "disk"
size = "1GiB"

[classes.machine-dir]
mode = "machine"
selectable = true
backend = "dir"

[classes.machine-loop]
mode = "machine"
selectable = true
backend = "loop"

[classes.bare]
mode = "immutable"
selectable = true

[classes.volume-loop]
mode = "immutable"
selectable = true
[[classes.volume-loop.volumes]]
path = "/data"
backend = "loop"
name = "{name}"
`, filepath.Join(dir, "state"), filepath.Join(dir, "vol-dir"), filepath.Join(dir, "vol-loop"))
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
