// bench measures containerd-persist against the stock runc shim of the same
// containerd, on a private containerd that it starts and removes again:
// start-to-exit time (through ctr and through the Go client), shim memory,
// write throughput in scratch and volumes against the same filesystems on
// the host, concurrent creates, persistctl over many volumes and over the
// leftovers of killed shims, and the Go benchmarks of the packages that do
// the shim's setup steps. It prints markdown tables, and writes every
// sample as JSON.
//
// It times what a user pays: both shims are copies made the same way, and
// each case is paired with runc in every round, for as many rounds as it
// takes to resolve a difference of -resolve (1%), up to -max-runs. Where
// a wall time interval does not decide a budget (a busy machine), the CPU
// time per container of the shims and what they run decides (see cpuMeter).
//
// It needs root, containerd, ctr and runc from scripts/install-deps.sh, and
// the shim and persistctl built into -bin (make bench does both).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
)

// options are the bench's knobs; the smoke test shrinks them.
type options struct {
	Runs       int     // start-to-exit rounds at least
	MaxRuns    int     // and at most, until every ratio is resolved
	Resolve    float64 // the widest interval of a ratio to runc, relative
	Warmup     int     // unmeasured rounds before them
	RSS        int     // sleeping containers of each kind for shim memory
	IORuns     int     // I/O runs of each target
	SeqMiB     int     // sequential write size
	RandMiB    int     // random write file size
	RandWrites int     // 4 KiB random writes per run
	Scale      []int   // concurrent creates
	ScaleRuns  int     // runs of each concurrency level
	Volumes    int     // volumes in the persistctl volumes ls fixture
	Leftovers  int     // dead containers' leftovers for persistctl gc
	StepRuns   int     // -benchtime of the packages' benchmarks, in runs
	Parts      string  // comma-separated parts to run; "" is all
	Bin        string  // containerd-shim-persist-v1 and persistctl
	Tools      string  // what scripts/install-deps.sh installed
	WorkParent string  // where the bench's own directory is made
	Out        string  // results JSON
	Namespace  string
	Compare    string // another build of the shim to time beside -bin's
	Cases      string // comma-separated start and scale cases; "" is all
}

func defaults() options {
	return options{
		Runs:       20,
		MaxRuns:    60,
		Resolve:    0.01,
		Warmup:     1,
		RSS:        5,
		IORuns:     6,
		SeqMiB:     256,
		RandMiB:    64,
		RandWrites: 16384,
		Scale:      []int{1, 4, 16},
		ScaleRuns:  5,
		Volumes:    10000,
		Leftovers:  200,
		StepRuns:   10,
		Bin:        "bin",
		Tools:      "/var/cache/containerd-persist/tools",
		WorkParent: "/var/tmp",
		Out:        "bench/results.json",
		Namespace:  "persist-bench",
	}
}

func main() {
	o := defaults()
	flag.IntVar(&o.Runs, "runs", o.Runs, "start-to-exit rounds at least (each runs every case once)")
	flag.IntVar(&o.MaxRuns, "max-runs", o.MaxRuns, "start-to-exit rounds at most, while a ratio to runc is not resolved")
	flag.Float64Var(&o.Resolve, "resolve", o.Resolve, "run rounds until each start-to-exit ratio's 95% interval is this narrow (0.01: 1%)")
	flag.IntVar(&o.Warmup, "warmup", o.Warmup, "unmeasured rounds before the start-to-exit runs")
	flag.IntVar(&o.RSS, "rss", o.RSS, "sleeping containers of each kind for shim memory")
	flag.IntVar(&o.IORuns, "io-runs", o.IORuns, "runs of each I/O target (even: each side goes first as often)")
	flag.IntVar(&o.SeqMiB, "seq-mib", o.SeqMiB, "sequential write size in MiB")
	flag.IntVar(&o.RandMiB, "rand-mib", o.RandMiB, "random write file size in MiB")
	flag.IntVar(&o.RandWrites, "rand-writes", o.RandWrites, "4 KiB random writes per I/O run")
	flag.IntVar(&o.ScaleRuns, "scale-runs", o.ScaleRuns, "runs of each concurrency level")
	flag.IntVar(&o.Volumes, "volumes", o.Volumes, "volumes for persistctl volumes ls")
	flag.IntVar(&o.Leftovers, "leftovers", o.Leftovers, "containers whose shims are killed, for persistctl gc")
	flag.IntVar(&o.StepRuns, "step-runs", o.StepRuns, "runs of each package benchmark of a setup step")
	flag.StringVar(&o.Parts, "parts", o.Parts, "run only these parts: start,memory,io,scale,persistctl,steps,snapshot,cluster")
	flag.StringVar(&o.Bin, "bin", o.Bin, "directory with the built shim and persistctl")
	flag.StringVar(&o.Tools, "tools", o.Tools, "directory of scripts/install-deps.sh's tools")
	flag.StringVar(&o.WorkParent, "workdir", o.WorkParent, "where to make the bench's temporary directory (a disk filesystem)")
	flag.StringVar(&o.Out, "o", o.Out, "write the results as JSON here")
	flag.StringVar(&o.Cases, "cases", o.Cases, "start and scale cases to run (runc always): imm-mem,imm-disk,machine-dir,machine-loop,volume-loop")
	flag.StringVar(&o.Compare, "compare", o.Compare, "also time start-to-exit with the shim in this directory (an A/B of two builds)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o, os.Stdout, os.Stderr)
	if res != nil && o.Out != "" {
		if werr := res.write(o.Out); werr != nil {
			fmt.Fprintln(os.Stderr, "bench: write results:", werr)
		} else {
			fmt.Printf("\nResults written to %s\n", o.Out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run sets up the private containerd, runs the parts and always tears
// everything down again. Tables go to out, progress to log. It returns what
// it measured even on failure.
func run(ctx context.Context, o options, out, log io.Writer) (res *results, retErr error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("needs root: it runs containerd, mounts filesystems and sets up loop devices")
	}
	repo, err := containerdtest.Repo()
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.Bin) {
		o.Bin = filepath.Join(repo, o.Bin)
	}
	if o.Compare != "" && !filepath.IsAbs(o.Compare) {
		o.Compare = filepath.Join(repo, o.Compare)
	}
	if o.Out != "" && !filepath.IsAbs(o.Out) {
		o.Out = filepath.Join(repo, o.Out)
	}
	e, err := newEnv(ctx, o, repo)
	e.log = log
	defer func() {
		if cerr := e.close(); cerr != nil {
			fmt.Fprintln(log, "bench: clean up:", cerr)
			if retErr == nil {
				retErr = cerr
			}
		}
	}()
	if err != nil {
		return nil, err
	}
	res = newResults(o, e)
	res.printHeader(out)

	parts := []struct {
		name string
		fn   func(context.Context, *env, *results) error
	}{
		{"start", benchStart},
		{"memory", benchMemory},
		{"io", benchIO},
		{"scale", benchScale},
		{"persistctl", benchPersistctl},
		{"steps", benchSteps},
		{"snapshot", benchSnapshot},
		{"cluster", benchCluster},
	}
	for _, p := range parts {
		if !o.wants(p.name) {
			continue
		}
		t0 := time.Now()
		fmt.Fprintf(log, "bench: %s ...\n", p.name)
		if err := p.fn(ctx, e, res); err != nil {
			return res, fmt.Errorf("%s: %w", p.name, err)
		}
		fmt.Fprintf(log, "bench: %s took %s\n", p.name, time.Since(t0).Round(time.Second))
		res.print(out, p.name)
	}
	res.printBudget(out)
	return res, nil
}

func (o options) wants(part string) bool {
	if o.Parts == "" {
		return true
	}
	for _, p := range splitComma(o.Parts) {
		if p == part {
			return true
		}
	}
	return false
}
