package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// stepPackages own the code of the shim's setup and teardown steps; their
// Go benchmarks time it, so that these figures cannot drift from what the
// shim runs.
var stepPackages = []string{"./config", "./journal", "./host", "./overlay", "./state"}

// stepResult is one benchmark's result.
type stepResult struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	Runs    int                `json:"runs"`
	MS      float64            `json:"ms_per_op"`
	Metrics map[string]float64 `json:"metrics,omitempty"` // others it reported, per op
}

// benchSteps runs the benchmarks of stepPackages, StepRuns times each,
// to show where the time of a case that misses its budget goes.
func benchSteps(ctx context.Context, e *env, r *results) error {
	args := []string{"test", "-run", "^$", "-bench", ".", "-benchtime", fmt.Sprintf("%dx", e.o.StepRuns)}
	cmd := exec.CommandContext(ctx, "go", append(args, stepPackages...)...)
	cmd.Dir = e.repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, out)
	}
	r.Steps = parseBenchmarks(out)
	if len(r.Steps) == 0 {
		return fmt.Errorf("go test -bench printed no benchmark: %s", out)
	}
	return nil
}

// parseBenchmarks reads go test -bench output: a "pkg:" line names the
// package of the benchmark lines after it, each
// "BenchmarkName-CPUS  RUNS  N ns/op  [V unit]...".
func parseBenchmarks(out []byte) []stepResult {
	var steps []stepResult
	pkg := ""
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 2 && f[0] == "pkg:" {
			pkg = f[1][strings.LastIndexByte(f[1], '/')+1:]
			continue
		}
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		runs, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 && strings.Trim(name[i+1:], "0123456789") == "" {
			name = name[:i] // the GOMAXPROCS suffix
		}
		st := stepResult{Package: pkg, Name: name, Runs: runs, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if f[i+1] == "ns/op" {
				st.MS = v / 1e6
			} else {
				st.Metrics[f[i+1]] = v
			}
		}
		steps = append(steps, st)
	}
	return steps
}
