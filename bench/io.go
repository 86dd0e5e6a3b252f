package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
)

// hostTarget is a filesystem on the host that a container target is held
// against: the same kind of filesystem, made and mounted the way the shim
// makes and mounts its own.
type hostTarget struct {
	Name  string
	Title string
	setup func(dir string) error
	// fresh targets are set up before each run and torn down after it,
	// like a scratch image, which is new for every container.
	fresh    bool
	teardown func(dir string) error
}

// ioPair is a place in a container and the host filesystem it compares to.
type ioPair struct {
	Case  string // a startCase name
	Title string
	Host  string // a hostTarget name
	// Overlay is why random writes here are not held to the budget: a
	// scratch laid over the image's content is an overlay, and each
	// write into it pays overlayfs's own cost, which the host's plain
	// filesystem does not. The budget is for the common case, a scratch
	// path that the image leaves empty.
	Overlay string
}

var ioPairs = []ioPair{
	{Case: "imm-mem-empty", Title: "memory scratch, path empty in the image (plain tmpfs)", Host: "tmpfs"},
	{Case: "imm-mem", Title: "memory /tmp over the image's content (overlay on tmpfs)", Host: "tmpfs",
		Overlay: "overlayfs on tmpfs"},
	{Case: "imm-disk", Title: "disk /tmp (overlay on loop ext4, no journal)", Host: "ext4-nojournal"},
	{Case: "machine-dir", Title: "machine root on dir volume (overlay upper)", Host: "dir"},
	{Case: "machine-loop", Title: "machine root on loopfile volume (overlay upper)", Host: "ext4-journal"},
	{Case: "volume-loop", Title: "loopfile volume at /data (bind)", Host: "ext4-journal"},
}

// ioResult is what iotool prints.
type ioResult struct {
	SeqBytes    int64   `json:"seq_bytes"`
	SeqSeconds  float64 `json:"seq_seconds"`
	RandWrites  int     `json:"rand_writes"`
	RandSeconds float64 `json:"rand_seconds"`
}

func (r ioResult) seqMiBs() float64 { return float64(r.SeqBytes) / (1 << 20) / r.SeqSeconds }
func (r ioResult) iops() float64    { return float64(r.RandWrites) / r.RandSeconds }

// benchIO runs the same write workloads in each container target and on
// each host filesystem, interleaved, IORuns times.
func benchIO(ctx context.Context, e *env, r *results) error {
	hostDir := filepath.Join(e.dir, "host-io")
	targets := e.hostTargets(hostDir)
	byName := map[string]hostTarget{}
	for _, t := range targets {
		byName[t.Name] = t
		if err := os.MkdirAll(filepath.Join(hostDir, t.Name), 0o700); err != nil {
			return err
		}
		if t.fresh {
			continue
		}
		if err := t.setup(filepath.Join(hostDir, t.Name)); err != nil {
			return fmt.Errorf("host %s: %w", t.Name, err)
		}
	}
	// Unmounted here so the images can go; close() would catch them too.
	defer containerdtest.UnmountAll(hostDir)

	seq := map[string][]float64{}
	iops := map[string][]float64{}
	add := func(key string, res ioResult) {
		seq[key] = append(seq[key], res.seqMiBs())
		iops[key] = append(iops[key], res.iops())
	}
	hostRun := func(name string) (res ioResult, retErr error) {
		t, dir := byName[name], filepath.Join(hostDir, name)
		if t.fresh {
			if err := t.setup(dir); err != nil {
				return res, err
			}
			defer func() {
				if err := t.teardown(dir); err != nil && retErr == nil {
					retErr = err
				}
			}()
		}
		return e.iotool(exec.CommandContext(ctx, filepath.Join(e.toolDir, "iotool"), e.ioArgs(filepath.Join(dir, "data"))...))
	}
	// Pair by pair, the container and the host take turns going first,
	// after an unmeasured run of each: on this kind of VM a write run right
	// after a quiet spell, or the first writes into untouched parts of a
	// sparse image, came out up to 4x slower, whatever they ran on. Every
	// run starts with the disks flushed, so writeback and discards that the
	// run before left (the root filesystem may be mounted -o discard) do not
	// land in its fsync. The flush waits for the shims of the runs before to
	// exit: a shim unlinks its disk scratch image after the delete returns,
	// before it exits, and the image's discards come with that.
	sync := func() error {
		if err := e.shimsExited(); err != nil {
			return err
		}
		unix.Sync()
		return nil
	}
	for _, p := range ioPairs {
		if err := sync(); err != nil {
			return err
		}
		if _, err := e.containerIO(ctx, caseNamed(p.Case), "io-"+p.Case+"-warmup"); err != nil {
			return err
		}
		if err := sync(); err != nil {
			return err
		}
		if _, err := hostRun(p.Host); err != nil {
			return fmt.Errorf("host %s: %w", p.Host, err)
		}
		for i := range e.o.IORuns {
			for j := range 2 {
				if err := sync(); err != nil {
					return err
				}
				if (i+j)%2 == 0 {
					res, err := e.containerIO(ctx, caseNamed(p.Case), fmt.Sprintf("io-%s-%d", p.Case, i))
					if err != nil {
						return err
					}
					add(p.Case, res)
					continue
				}
				res, err := hostRun(p.Host)
				if err != nil {
					return fmt.Errorf("host %s: %w", p.Host, err)
				}
				add("host:"+p.Host, res)
			}
		}
	}
	r.setIO(targets, seq, iops)
	return nil
}

func (e *env) hostTargets(hostDir string) []hostTarget {
	gib := uint64(1 << 30)
	image := func(name string) string { return filepath.Join(hostDir, name+".img") }
	loop := func(name string, journaled bool, opts ...string) func(string) error {
		return func(dir string) error {
			if err := (host.Linux{}).MakeImage(image(name), gib, host.ImageOptions{Journaled: journaled}); err != nil {
				return err
			}
			return host.Linux{}.Mount(mount.Mount{Type: "ext4", Source: image(name), Options: append([]string{"loop"}, opts...)}, dir)
		}
	}
	return []hostTarget{
		{Name: "tmpfs", Title: "host tmpfs", setup: func(dir string) error {
			return host.Linux{}.Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=512m"}}, dir)
		}},
		// The options and lifecycles are the shim's: a scratch image has no
		// journal, mounts noatime and is new for every container; a volume
		// image is journaled and stays.
		{Name: "ext4-nojournal", Title: "host loop ext4, no journal, 1 GiB, new each run",
			setup: loop("ext4-nojournal", false, "nodev", "nosuid", "noatime"), fresh: true,
			teardown: func(dir string) error {
				if err := (host.Linux{}).Unmount(dir); err != nil {
					return err
				}
				return os.Remove(image("ext4-nojournal"))
			}},
		{Name: "dir", Title: "host directory on the backend's filesystem", setup: func(string) error { return nil }},
		{Name: "ext4-journal", Title: "host loop ext4, journaled, 1 GiB", setup: loop("ext4-journal", true)},
	}
}

func (e *env) ioArgs(dir string) []string {
	return []string{dir, strconv.Itoa(e.o.SeqMiB), strconv.Itoa(e.o.RandMiB), strconv.Itoa(e.o.RandWrites)}
}

// containerIO runs iotool in a container of case c, bind-mounted read-only
// at /bench; the timing is iotool's own, so container start is not in it.
func (e *env) containerIO(ctx context.Context, c startCase, id string) (ioResult, error) {
	var stdout, stderr bytes.Buffer
	fifos := filepath.Join(e.dir, "fifo")
	if err := os.MkdirAll(fifos, 0o700); err != nil {
		return ioResult{}, err
	}
	io := cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(fifos))
	bind := oci.WithMounts([]specs.Mount{{Destination: "/bench", Type: "bind", Source: e.toolDir, Options: []string{"rbind", "ro"}}})
	args := append([]string{"/bench/iotool"}, e.ioArgs(c.IODir)...)
	if _, err := e.runToEnd(ctx, c, id, c.Volume, []oci.SpecOpts{bind}, io, args...); err != nil {
		return ioResult{}, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return parseIO(stdout.Bytes())
}

func (e *env) iotool(cmd *exec.Cmd) (ioResult, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return ioResult{}, fmt.Errorf("iotool: %v: %s", err, stderr.String())
	}
	return parseIO(out)
}

func parseIO(out []byte) (ioResult, error) {
	var r ioResult
	if err := json.Unmarshal(out, &r); err != nil || r.SeqSeconds <= 0 || r.RandSeconds <= 0 {
		return r, fmt.Errorf("iotool printed %q: %v", out, err)
	}
	return r, nil
}

// shimsExited waits until no process runs one of the bench's shim copies:
// what a shim does after a delete returns and before it exits is done.
func (e *env) shimsExited() error {
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		procs, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		running := ""
		for _, p := range procs {
			exe, err := os.Readlink(filepath.Join("/proc", p.Name(), "exe"))
			if err == nil && filepath.Dir(exe) == e.shims {
				running = p.Name()
				break
			}
		}
		if running == "" {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("a shim (pid %s) still runs 10 s after its container was deleted", running)
		}
	}
}
