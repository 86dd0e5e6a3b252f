package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"

	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
)

const (
	persistRuntime = "io.containerd.persist.v1"
	runcRuntime    = "io.containerd.runc.v2"
	imageName      = "docker.io/library/persist-bench:1"
	persistShim    = "containerd-shim-persist-v1"
	runcShim       = "containerd-shim-runc-v2"
)

// env is one bench run's world: a private containerd with both shims on
// its PATH, a config with a class per case, and a directory that holds all
// of it and is removed at the end.
type env struct {
	o        options
	log      io.Writer // progress
	repo     string
	dir      string // everything of this run
	daemon   *containerdtest.Daemon
	shims    string // the copies of both shims that containerd runs
	config   string // the shim's config, one class per case
	stateDir string
	toolDir  string // holds iotool, bind-mounted into I/O containers
	client   *client.Client
	image    client.Image
	cpu      *cpuMeter // nil where CPU time cannot be measured
}

func newEnv(ctx context.Context, o options, repo string) (*env, error) {
	e := &env{o: o, repo: repo}
	tools, err := containerdtest.FindTools()
	if err != nil {
		return e, err
	}
	for _, b := range []string{persistShim, "persistctl"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			return e, fmt.Errorf("%w: build it first (make build)", err)
		}
	}
	if err := os.MkdirAll(o.WorkParent, 0o755); err != nil {
		return e, err
	}
	if e.dir, err = os.MkdirTemp(o.WorkParent, "persist-bench-"); err != nil {
		return e, err
	}
	e.daemon = &containerdtest.Daemon{Dir: filepath.Join(e.dir, "ctd"), Repo: repo, Tools: tools, ShimDir: filepath.Join(e.dir, "shims")}
	e.shims = e.daemon.ShimDir
	e.stateDir = filepath.Join(e.dir, "state")
	e.config = filepath.Join(e.dir, "persist.toml")
	e.toolDir = filepath.Join(e.dir, "tool")
	// The shim socket dir must fit containerd's limit, or shims share the
	// host's /run/containerd/s.
	if len(filepath.Join(e.daemon.Dir, "s")) > 42 {
		return e, fmt.Errorf("work directory %s is too long for containerd's shim sockets: pick a shorter -workdir", e.dir)
	}
	// A binary as the linker wrote it execs up to ~1 ms slower than a copy
	// of it: both shims are copied the same way, so that neither pays that.
	copies := map[string]string{
		filepath.Join(o.Bin, persistShim):         filepath.Join(e.shims, persistShim),
		filepath.Join(tools.Containerd, runcShim): filepath.Join(e.shims, runcShim),
	}
	if o.Compare != "" {
		copies[filepath.Join(o.Compare, persistShim)] = filepath.Join(e.dir, "compare", persistShim)
	}
	for src, dst := range copies {
		if err := copyExecutable(src, dst); err != nil {
			return e, err
		}
	}
	if err := os.WriteFile(e.config, []byte(shimConfig(e.dir)), 0o600); err != nil {
		return e, err
	}
	for _, b := range []string{"vol-dir", "vol-loop"} {
		if err := os.Mkdir(filepath.Join(e.dir, b), 0o700); err != nil {
			return e, err
		}
	}
	// iotool is static, so that it runs in a busybox image.
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(e.toolDir, "iotool"), "./bench/iotool")
	build.Dir, build.Env = repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return e, fmt.Errorf("build iotool: %w: %s", err, out)
	}
	tar := filepath.Join(e.dir, "image.tar")
	if err := containerdtest.BuildImage(repo, tar, imageName); err != nil {
		return e, err
	}
	if err := e.daemon.Start(); err != nil {
		return e, err
	}
	if e.cpu, err = newCPUMeter(e.daemon.PID(), filepath.Base(e.dir)); err != nil {
		fmt.Fprintln(os.Stderr, "bench: CPU time per container will not be measured:", err)
	}
	if err := e.daemon.Import(o.Namespace, tar); err != nil {
		return e, err
	}
	if e.client, err = client.New(e.daemon.Address(), client.WithDefaultNamespace(o.Namespace)); err != nil {
		return e, err
	}
	if e.image, err = e.client.GetImage(ctx, imageName); err != nil {
		return e, err
	}
	return e, nil
}

// copyExecutable copies the binary src to a new file dst, as cp does.
func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

// ctr is a ctr command in the bench's namespace.
func (e *env) ctr(ctx context.Context, args ...string) *exec.Cmd {
	return e.daemon.Ctr(ctx, e.o.Namespace, args...)
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
	if e.daemon != nil {
		errs = append(errs, e.daemon.Stop())
	}
	if e.cpu != nil {
		errs = append(errs, e.cpu.close())
	}
	errs = append(errs, containerdtest.RemoveAll(e.dir))
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

// shimConfig is the shim's config for the bench: one selectable class per
// case, its state and backends under dir. Scratch and volume sizes leave
// room for the I/O runs. mem-volume is for persistctl gc's fixture.
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

[classes.mem-empty]
mode = "immutable"
selectable = true
[[classes.mem-empty.scratch]]
path = "/var/tmp"
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

[classes.mem-volume]
mode = "immutable"
selectable = true
[[classes.mem-volume.scratch]]
path = "/tmp"
medium = "memory"
size = "512MiB"
[[classes.mem-volume.volumes]]
path = "/data"
backend = "dir"
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
