package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/opencontainers/runtime-spec/specs-go"
)

// startCase is one way to run a container: the stock runc shim, or ours
// with one of the bench config's classes.
type startCase struct {
	Name   string  `json:"name"`
	Title  string  `json:"title"`
	Class  string  `json:"class,omitempty"`  // "" is the runc shim
	Volume string  `json:"volume,omitempty"` // name annotation: reattached every run
	Budget float64 `json:"budget,omitempty"` // start-to-exit ratio to runc
	Shim   string  `json:"shim,omitempty"`   // another build of the shim, by path
	IODir  string  `json:"-"`                // where I/O runs write in the container
	// For runc cases that do by hand part of what a class does.
	ReadOnly bool   `json:"read_only,omitempty"` // read-only root
	TmpfsTmp bool   `json:"tmpfs_tmp,omitempty"` // a 512 MiB tmpfs at /tmp
	config   string // the shim's config, when not the bench's
}

var cases = []startCase{
	{Name: "runc", Title: "runc shim (io.containerd.runc.v2)"},
	{Name: "imm-mem", Title: "immutable, memory /tmp", Class: "mem", Budget: 1.01, IODir: "/tmp"},
	{Name: "imm-disk", Title: "immutable, disk /tmp", Class: "disk", Budget: 1.01, IODir: "/tmp"},
	{Name: "machine-dir", Title: "machine on dir", Class: "machine-dir", Volume: "machine-dir", Budget: 1.02, IODir: "/var/bench"},
	{Name: "machine-loop", Title: "machine on loopfile", Class: "machine-loop", Volume: "machine-loop", Budget: 1.05, IODir: "/var/bench"},
	{Name: "volume-loop", Title: "immutable + loopfile volume", Class: "volume-loop", Volume: "volume-loop", Budget: 1.05, IODir: "/data"},
}

// extraCases are only timed for start-to-exit. The first is the default
// reference row: what users run today instead of an immutable class
// (docker/nerdctl --read-only --tmpfs /tmp). The others split the cost of
// an immutable class; pick them with -cases.
var extraCases = []startCase{
	{Name: "runc-ro-tmpfs", Title: "reference: runc shim, read-only root + tmpfs /tmp", ReadOnly: true, TmpfsTmp: true},
	{Name: "runc-ro", Title: "runc shim, read-only root", ReadOnly: true},
	{Name: "imm-bare", Title: "immutable, no scratch", Class: "bare"},
	// The bench image's /var/tmp is empty: its memory scratch is a tmpfs
	// that runc mounts, with no overlay (the I/O part's common case).
	{Name: "imm-mem-empty", Title: "immutable, memory /var/tmp, empty in the image", Class: "mem-empty", IODir: "/var/tmp"},
}

func caseNamed(name string) startCase {
	for _, c := range append(slices.Clone(cases), extraCases...) {
		if c.Name == name {
			return c
		}
	}
	panic("no case " + name)
}

func (c startCase) annotations(volume string) map[string]string {
	a := map[string]string{"persist.containerd.io/class": c.Class}
	if volume != "" {
		a["persist.containerd.io/name"] = volume
	}
	return a
}

// startCases are the cases of the start part: with -compare, every case of
// ours once more with the other build of the shim, for an A/B in one run.
func (e *env) startCases() []startCase {
	picked := e.cases()
	if e.o.Cases == "" {
		picked = append(slices.Clone(picked), extraCases[0])
	}
	if e.o.Compare == "" {
		return picked
	}
	out := slices.Clone(picked)
	for _, c := range picked[1:] {
		if c.Class == "" {
			continue
		}
		c.Name += "-compare"
		c.Title += " [compare]"
		c.Shim = filepath.Join(e.dir, "compare", persistShim) // the copy
		out = append(out, c)
	}
	return out
}

// cases are the cases that -cases picks; runc, the baseline, always.
func (e *env) cases() []startCase {
	if e.o.Cases == "" {
		return cases
	}
	picked := []startCase{cases[0]}
	for _, c := range append(slices.Clone(cases[1:]), extraCases...) {
		if slices.Contains(splitComma(e.o.Cases), c.Name) {
			picked = append(picked, c)
		}
	}
	return picked
}

// runtime is the runtime a case's containers ask containerd for: a
// runtime name, or the path of a shim binary.
func (c startCase) runtime() string {
	switch {
	case c.Class == "":
		return runcRuntime
	case c.Shim != "":
		return c.Shim
	}
	return persistRuntime
}

// benchStart times `ctr run --rm IMG ID true` and the same through the Go
// client for every case in rounds: each round runs every case once, in an
// order rotated from round to round, so that a case and runc of one round
// make a pair that the machine's drift hits alike. The first rounds are
// warm-up and are not kept. Rounds go on past -runs until the interval of
// every case's ratio to runc is narrower than -resolve, or -max-runs.
func benchStart(ctx context.Context, e *env, r *results) error {
	ctrMS := map[string][]float64{}
	clientMS := map[string][]float64{}
	cpuMS := map[string][][2]float64{}  // by case, a round's ctr and client runs
	phaseMS := map[string][][]float64{} // by case, then phase
	all := e.startCases()
	more := func(round int) bool {
		return round < e.o.Runs || round < e.o.MaxRuns && !resolved(all, e.o.Resolve, ctrMS, clientMS)
	}
	for round := -e.o.Warmup; more(round); round++ {
		if round > 0 && round%50 == 0 {
			fmt.Fprintf(e.log, "bench: start: %d rounds, widest interval %.2f%%\n", round, 100*widest(all, ctrMS, clientMS))
		}
		order := rotated(all, round)
		cpu := map[string]*[2]float64{}
		for _, c := range order {
			cpu[c.Name] = new([2]float64)
			var d time.Duration
			t, err := e.measureCPU(func() (err error) {
				d, err = e.ctrRun(ctx, c, fmt.Sprintf("%s-ctr-%d", c.Name, round+e.o.Warmup), c.Volume)
				return err
			})
			if err != nil {
				return err
			}
			cpu[c.Name][0] = ms(t)
			if round >= 0 {
				ctrMS[c.Name] = append(ctrMS[c.Name], ms(d))
			}
		}
		for _, c := range order {
			var d time.Duration
			var phase []time.Duration
			t, err := e.measureCPU(func() (err error) {
				d, phase, err = e.clientRun(ctx, c, fmt.Sprintf("%s-go-%d", c.Name, round+e.o.Warmup), c.Volume, "true")
				return err
			})
			if err != nil {
				return err
			}
			cpu[c.Name][1] = ms(t)
			if round >= 0 {
				if e.cpu != nil {
					cpuMS[c.Name] = append(cpuMS[c.Name], *cpu[c.Name])
				}
				clientMS[c.Name] = append(clientMS[c.Name], ms(d))
				if phaseMS[c.Name] == nil {
					phaseMS[c.Name] = make([][]float64, len(phases))
				}
				for i, p := range phase {
					phaseMS[c.Name][i] = append(phaseMS[c.Name][i], ms(p))
				}
			}
		}
	}
	setup, teardown, err := shimTimings(e.stateDir)
	if err != nil {
		return err
	}
	r.setStart(all, ctrMS, clientMS, phaseMS, cpuMS)
	for i := range r.Start {
		r.Start[i].ShimSetup, r.Start[i].ShimTeardown = newSeries(setup[r.Start[i].Name]), newSeries(teardown[r.Start[i].Name])
	}
	return nil
}

// measureCPU runs fn and returns the CPU time that containerd, the shims
// and what they ran took meanwhile; 0 where it cannot be measured.
func (e *env) measureCPU(fn func() error) (time.Duration, error) {
	if e.cpu == nil {
		return 0, fn()
	}
	return e.cpu.measure(fn)
}

// ctrRun runs `ctr run --rm` to the end and returns how long it took.
func (e *env) ctrRun(ctx context.Context, c startCase, id, volume string) (time.Duration, error) {
	args := []string{"run", "--rm", "--runtime", c.runtime()}
	if c.ReadOnly {
		args = append(args, "--read-only")
	}
	if c.TmpfsTmp {
		args = append(args, "--mount", "type=tmpfs,source=tmpfs,destination=/tmp,options=nosuid:nodev:size=512m")
	}
	if c.Class != "" {
		args = append(args, "--runtime-config-path", e.config)
		for k, v := range c.annotations(volume) {
			args = append(args, "--annotation", k+"="+v)
		}
	}
	args = append(args, imageName, id, "true")
	cmd := e.ctr(ctx, args...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("ctr run %s (%s): %v: %s", id, c.Title, err, out)
	}
	return d, nil
}

// newContainer creates a container the way ctr run does: a new overlayfs
// snapshot of the image, the image's config, and the case's runtime and
// annotations.
func (e *env) newContainer(ctx context.Context, c startCase, id, volume string, extra []oci.SpecOpts, args ...string) (client.Container, error) {
	ropts := any(&runcoptions.Options{})
	specOpts := []oci.SpecOpts{oci.WithDefaultUnixDevices, oci.WithImageConfig(e.image), oci.WithProcessArgs(args...)}
	if c.Class != "" {
		ropts = &runtimeoptions.Options{ConfigPath: cmp.Or(c.config, e.config)}
		specOpts = append(specOpts, oci.WithAnnotations(c.annotations(volume)))
	}
	if c.ReadOnly {
		specOpts = append(specOpts, oci.WithRootFSReadonly())
	}
	if c.TmpfsTmp {
		specOpts = append(specOpts, oci.WithMounts([]specs.Mount{{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=512m"}}}))
	}
	return e.client.NewContainer(ctx, id,
		client.WithImage(e.image),
		client.WithSnapshotter("overlayfs"),
		client.WithNewSnapshot(id, e.image),
		client.WithRuntime(c.runtime(), ropts),
		client.WithNewSpec(append(specOpts, extra...)...))
}

// Phases of a client run, in order: each is timed from the end of the one
// before, so a case's overhead can be pinned to the shim's start and Create,
// the start of the process, or the Delete and the shim's exit.
var phases = []string{
	"container",   // NewContainer: snapshot and metadata, no shim yet
	"task create", // NewTask: shim start, then its Create (our setup)
	"start",       // Start
	"run",         // until the exit event
	"task delete", // task Delete: our teardown, then the shim exits
	"cleanup",     // container and snapshot removal
}

// clientRun creates, starts, waits for and deletes a container through the
// Go client; the time covers all of it. It also returns each phase's time.
func (e *env) clientRun(ctx context.Context, c startCase, id, volume string, args ...string) (time.Duration, []time.Duration, error) {
	start := time.Now()
	phase, err := e.runToEnd(ctx, c, id, volume, nil, cio.NullIO, args...)
	if err != nil {
		return 0, nil, err
	}
	return time.Since(start), phase, nil
}

// runToEnd runs a container to its exit and deletes it, and returns how long
// each phase took; it fails unless the process exits 0.
func (e *env) runToEnd(ctx context.Context, c startCase, id, volume string, extra []oci.SpecOpts, io cio.Creator, args ...string) (phase []time.Duration, retErr error) {
	last := time.Now()
	lap := func() {
		now := time.Now()
		phase = append(phase, now.Sub(last))
		last = now
	}
	ctn, err := e.newContainer(ctx, c, id, volume, extra, args...)
	if err != nil {
		return nil, fmt.Errorf("create %s (%s): %w", id, c.Title, err)
	}
	lap()
	defer func() {
		if retErr != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			deleteContainer(cctx, ctn)
		}
	}()
	task, err := ctn.NewTask(ctx, io)
	if err != nil {
		return nil, fmt.Errorf("create task %s (%s): %w", id, c.Title, err)
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		return nil, err
	}
	lap()
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", id, c.Title, err)
	}
	lap()
	var st client.ExitStatus
	select {
	case st = <-exit:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	lap()
	if _, err := task.Delete(ctx); err != nil {
		return nil, fmt.Errorf("delete task %s: %w", id, err)
	}
	lap()
	if err := ctn.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		return nil, fmt.Errorf("delete container %s: %w", id, err)
	}
	lap()
	if code, _, err := st.Result(); err != nil {
		return nil, err
	} else if code != 0 {
		return nil, fmt.Errorf("%s (%s) exited %d", id, c.Title, code)
	}
	return phase, nil
}

// benchScale starts n containers of a case at once through the Go client
// and times until all have exited and been deleted. Machine and volume
// cases get a volume per slot, since a volume has one holder at a time.
func benchScale(ctx context.Context, e *env, r *results) error {
	wall := map[string]map[int][]float64{}
	for round := -1; round < e.o.ScaleRuns; round++ {
		for _, c := range e.cases() {
			if wall[c.Name] == nil {
				wall[c.Name] = map[int][]float64{}
			}
			levels := e.o.Scale
			if round < 0 { // warm-up: make every slot's volume once
				levels = []int{maxInt(e.o.Scale)}
			}
			for _, n := range levels {
				d, err := e.concurrent(ctx, c, n, round)
				if err != nil {
					return err
				}
				if round >= 0 {
					wall[c.Name][n] = append(wall[c.Name][n], ms(d))
				}
			}
		}
	}
	r.setScale(e.cases(), wall)
	return nil
}

func (e *env) concurrent(ctx context.Context, c startCase, n, round int) (time.Duration, error) {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		volume := ""
		if c.Volume != "" {
			volume = fmt.Sprintf("%s-%d", c.Volume, i)
		}
		id := fmt.Sprintf("scale-%s-%d-%d-%d", c.Name, n, round+1, i)
		wg.Go(func() {
			_, errs[i] = e.runToEnd(ctx, c, id, volume, nil, cio.NullIO, "true")
		})
	}
	wg.Wait()
	d := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return d, nil
}

// rotated is cases with its first round%len(cases) cases moved to its end.
func rotated(cases []startCase, round int) []startCase {
	k := (round%len(cases) + len(cases)) % len(cases)
	return append(slices.Clone(cases[k:]), cases[:k]...)
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
