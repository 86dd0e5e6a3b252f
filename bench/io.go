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

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/host"
)

// hostTarget is a filesystem on the host that a container target is held
// against: the same kind of filesystem, made and mounted the way the shim
// makes and mounts its own.
type hostTarget struct {
	Name  string
	Title string
	setup func(dir string) error
}

// ioPair is a place in a container and the host filesystem it compares to.
type ioPair struct {
	Case  string // a startCase name
	Title string
	Host  string // a hostTarget name
}

var ioPairs = []ioPair{
	{"imm-mem", "memory /tmp (overlay on tmpfs)", "tmpfs"},
	{"imm-disk", "disk /tmp (overlay on loop ext4, no journal)", "ext4-nojournal"},
	{"machine-dir", "machine root on dir volume (overlay upper)", "dir"},
	{"machine-loop", "machine root on loopfile volume (overlay upper)", "ext4-journal"},
	{"volume-loop", "loopfile volume at /data (bind)", "ext4-journal"},
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
	for _, t := range targets {
		if err := os.MkdirAll(filepath.Join(hostDir, t.Name), 0o700); err != nil {
			return err
		}
		if err := t.setup(filepath.Join(hostDir, t.Name)); err != nil {
			return fmt.Errorf("host %s: %w", t.Name, err)
		}
	}
	// Unmounted here so the images can go; close() would catch them too.
	defer unmountUnder(hostDir)

	seq := map[string][]float64{}
	iops := map[string][]float64{}
	add := func(key string, res ioResult) {
		seq[key] = append(seq[key], res.seqMiBs())
		iops[key] = append(iops[key], res.iops())
	}
	for i := range e.o.IORuns {
		for _, p := range ioPairs {
			res, err := e.containerIO(ctx, caseNamed(p.Case), fmt.Sprintf("io-%s-%d", p.Case, i))
			if err != nil {
				return err
			}
			add(p.Case, res)
		}
		for _, t := range targets {
			res, err := e.iotool(ctx, exec.CommandContext(ctx, filepath.Join(e.toolDir, "iotool"), e.ioArgs(filepath.Join(hostDir, t.Name, "data"))...))
			if err != nil {
				return fmt.Errorf("host %s: %w", t.Name, err)
			}
			add("host:"+t.Name, res)
		}
	}
	r.setIO(targets, seq, iops)
	return nil
}

func (e *env) hostTargets(hostDir string) []hostTarget {
	gib := uint64(1 << 30)
	loop := func(name string, journaled bool, opts ...string) func(string) error {
		return func(dir string) error {
			img := filepath.Join(hostDir, name+".img")
			if err := (host.Linux{}).MakeImage(img, gib, journaled); err != nil {
				return err
			}
			return host.Linux{}.Mount(mount.Mount{Type: "ext4", Source: img, Options: append([]string{"loop"}, opts...)}, dir)
		}
	}
	return []hostTarget{
		{"tmpfs", "host tmpfs", func(dir string) error {
			return host.Linux{}.Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=512m"}}, dir)
		}},
		// The options are the shim's: scratch images have no journal and
		// mount noatime; volume images are journaled.
		{"ext4-nojournal", "host loop ext4, no journal, 1 GiB", loop("ext4-nojournal", false, "nodev", "nosuid", "noatime")},
		{"dir", "host directory on the backend's filesystem", func(string) error { return nil }},
		{"ext4-journal", "host loop ext4, journaled, 1 GiB", loop("ext4-journal", true)},
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
	if err := e.runToEnd(ctx, c, id, c.Volume, []oci.SpecOpts{bind}, io, args...); err != nil {
		return ioResult{}, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return parseIO(stdout.Bytes())
}

func (e *env) iotool(ctx context.Context, cmd *exec.Cmd) (ioResult, error) {
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
