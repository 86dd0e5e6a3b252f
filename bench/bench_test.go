package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// TestSmoke runs every part of the bench once with tiny sizes, so that the
// bench keeps working as the code changes. It checks that each part ran and
// measured something; it never judges the figures.
func TestSmoke(t *testing.T) {
	testenv.NeedRoot(t)
	if _, err := containerdtest.FindTools(); err != nil {
		testenv.Skip(t, "needs the tools of scripts/install-deps.sh", err.Error())
	}
	o := defaults()
	o.Runs, o.MaxRuns, o.Warmup, o.RSS, o.IORuns, o.ScaleRuns, o.StepRuns = 2, 2, 0, 1, 1, 1, 1
	o.SeqMiB, o.RandMiB, o.RandWrites = 4, 1, 64
	o.Scale = []int{1, 2}
	o.Volumes, o.Leftovers = 10, 3
	o.Namespace = "persist-bench-smoke"
	o.Out = filepath.Join(t.TempDir(), "results.json")
	o.Bin = buildBinaries(t)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, log bytes.Buffer
	res, err := run(ctx, o, &out, &log)
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, log.String(), out.String())
	}
	if err := res.write(o.Out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	var back results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("results JSON: %v", err)
	}

	if want := len(cases) + 1; len(back.Start) != want { // and the reference
		t.Errorf("start-to-exit has %d cases, want %d", len(back.Start), want)
	}
	for _, s := range back.Start {
		if len(s.Ctr.Samples) != o.Runs || len(s.Client.Samples) != o.Runs {
			t.Errorf("start-to-exit %s: %d and %d rounds, want %d", s.Name, len(s.Ctr.Samples), len(s.Client.Samples), o.Runs)
		}
		if s.Ctr.Median <= 0 || s.Client.Median <= 0 || s.CtrCI[0] <= 0 || s.ClientCI[0] <= 0 {
			t.Errorf("start-to-exit %s: ctr %v ms %v, client %v ms %v", s.Name, s.Ctr.Median, s.CtrCI, s.Client.Median, s.ClientCI)
		}
		// Each of our runs, through ctr and the Go client, is recorded
		// by the shim; runc's are not.
		if want := 2 * o.Runs; s.Class != "" && (len(s.ShimSetup.Samples) != want || len(s.ShimTeardown.Samples) != want) {
			t.Errorf("start-to-exit %s: the shim recorded %d setups and %d teardowns, want %d", s.Name, len(s.ShimSetup.Samples), len(s.ShimTeardown.Samples), want)
		}
	}
	if len(back.Memory) != 3 {
		t.Errorf("memory has %d kinds, want 3", len(back.Memory))
	}
	for _, m := range back.Memory {
		if m.MeanMiB <= 0 {
			t.Errorf("shim RSS of %s: %v MiB", m.Case, m.MeanMiB)
		}
	}
	if len(back.IO) != len(ioPairs) {
		t.Errorf("I/O has %d targets, want %d", len(back.IO), len(ioPairs))
	}
	for _, io := range back.IO {
		if io.SeqMiBs.Median <= 0 || io.HostSeq.Median <= 0 || io.IOPS.Median <= 0 || io.HostIOPS.Median <= 0 {
			t.Errorf("I/O %s: %+v", io.Case, io)
		}
	}
	for _, s := range back.Scale {
		if len(s.WallMS) != len(o.Scale) {
			t.Errorf("scale %s: %d levels, want %d", s.Case, len(s.WallMS), len(o.Scale))
		}
	}
	if back.VolumesLs == nil || back.GC == nil {
		t.Errorf("persistctl part missing: ls %v, gc %v", back.VolumesLs, back.GC)
	} else {
		if back.VolumesLs.Skipped != "" || len(back.VolumesLs.Seconds) != lsRuns || len(back.VolumesLs.Scrape) != lsRuns {
			t.Errorf("volumes ls timed %d times and metrics %d, want %d (%s)", len(back.VolumesLs.Seconds), len(back.VolumesLs.Scrape), lsRuns, back.VolumesLs.Skipped)
		}
		if back.GC.Skipped != "" || back.GC.Seconds <= 0 || back.GC.Remaining != 0 {
			t.Errorf("persistctl gc: %+v, want it timed and nothing left", back.GC)
		}
	}
	if len(back.Steps) == 0 {
		t.Error("no setup step timed")
	}
	for _, s := range back.Steps {
		if s.Runs != o.StepRuns || s.MS <= 0 {
			t.Errorf("step %s %s: %d runs of %v ms, want %d", s.Package, s.Name, s.Runs, s.MS, o.StepRuns)
		}
	}
	if len(back.Budget) == 0 {
		t.Error("no budget lines")
	}
	if t.Failed() {
		t.Logf("tables:\n%s", out.String())
	}
}

// buildBinaries builds the shim and persistctl as make build does.
func buildBinaries(t *testing.T) string {
	t.Helper()
	repo, err := containerdtest.Repo()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := containerdtest.Build(repo, bin, []string{"-trimpath"}, persistShim, "persistctl"); err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestPairedRatio(t *testing.T) {
	// Runc drifts from 100 to 190 ms; the case is 2% slower in every round.
	var a, b []float64
	for i := range 40 {
		base := 100 + float64(i%10)*10
		b = append(b, base)
		a = append(a, base*1.02)
	}
	r, ci := pairedRatio(a, b)
	if r < 1.0199 || r > 1.0201 || ci[0] < 1.0199 || ci[1] > 1.0201 {
		t.Errorf("pairedRatio = %v %v, want 1.02 (1.02-1.02): pairing takes the drift out", r, ci)
	}
	// Ratios 1..40: the median is 20.5, and ranks 13 and 28 bound it.
	a, b = nil, nil
	for i := range 40 {
		a, b = append(a, float64(40-i)), append(b, 1)
	}
	if r, ci := pairedRatio(a, b); r != 20.5 || ci != [2]float64{13, 28} {
		t.Errorf("pairedRatio of 1..40 = %v %v, want 20.5 (13-28)", r, ci)
	}
	if r, ci := pairedRatio(nil, nil); r != 0 || ci != [2]float64{} {
		t.Errorf("pairedRatio of nothing = %v %v", r, ci)
	}
}

func TestResolved(t *testing.T) {
	cs := []startCase{{Name: "runc"}, {Name: "x"}}
	ctr := map[string][]float64{"runc": {100, 100, 100, 100, 100}, "x": {101, 101, 101, 101, 101}}
	cl := map[string][]float64{"runc": {100, 100, 100, 100, 100}, "x": {95, 101, 103, 108, 110}}
	if resolved(cs, 0.01, ctr, ctr) != true {
		t.Error("identical ratios: not resolved")
	}
	if resolved(cs, 0.01, ctr, cl) != false {
		t.Error("ratios from 0.95 to 1.10: resolved to 1%")
	}
	if resolved(cs, 0.01, map[string][]float64{}, cl) != false {
		t.Error("no rounds yet: resolved")
	}
}

func TestRotated(t *testing.T) {
	cs := []startCase{{Name: "a"}, {Name: "b"}, {Name: "c"}}
	for round, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		var got []string
		for _, c := range rotated(cs, round) {
			got = append(got, c.Name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round %d: %q, want %q", round, got, want)
		}
	}
	if rotated(cs, -1)[0].Name != "c" {
		t.Error("a warm-up round is not rotated like the others")
	}
}

func TestParseBenchmarks(t *testing.T) {
	out := []byte(`goos: linux
pkg: github.com/containerd-persist/containerd-persist/host
BenchmarkMakeImage/scratch/64MiB/sparse-2         	      10	   1234567 ns/op	    250000 rm-ns/op
PASS
pkg: github.com/containerd-persist/containerd-persist/state
BenchmarkVolume/web-vol 	       3	  2000000 ns/op
ok  	github.com/containerd-persist/containerd-persist/state	1.2s
`)
	want := []stepResult{
		{Package: "host", Name: "MakeImage/scratch/64MiB/sparse", Runs: 10, MS: 1.234567, Metrics: map[string]float64{"rm-ns/op": 250000}},
		{Package: "state", Name: "Volume/web-vol", Runs: 3, MS: 2, Metrics: map[string]float64{}},
	}
	if got := parseBenchmarks(out); !reflect.DeepEqual(got, want) {
		t.Errorf("parseBenchmarks =\n %+v\nwant\n %+v", got, want)
	}
}

func TestCaseOf(t *testing.T) {
	for id, want := range map[string]string{"imm-mem-ctr-3": "imm-mem", "machine-dir-go-12": "machine-dir", "imm-mem-compare-go-0": "imm-mem-compare", "rss-imm-mem-0": "", "gc-00001": ""} {
		if got, ok := caseOf(id); got != want || ok != (want != "") {
			t.Errorf("caseOf(%q) = %q, %v; want %q", id, got, ok, want)
		}
	}
}
