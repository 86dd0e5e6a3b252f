package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	child() // the bench starts this binary again for some jobs
	os.Exit(m.Run())
}

// TestSmoke runs every part of the bench once with tiny sizes, so that the
// bench keeps working as the code changes. It checks that each part ran and
// measured something; it never judges the figures.
func TestSmoke(t *testing.T) {
	o := defaults()
	if v := os.Getenv("TOOLS_DIR"); v != "" {
		o.Tools = v
	}
	requireHost(t, o.Tools)
	o.Runs, o.Warmup, o.RSS, o.IORuns, o.ScaleRuns, o.StepRuns = 1, 0, 1, 1, 1, 1
	o.SeqMiB, o.RandMiB, o.RandWrites = 4, 1, 64
	o.Scale = []int{1, 2}
	o.Volumes, o.Leftovers = 10, 10
	o.Namespace = "persist-bench-smoke"
	o.Out = filepath.Join(t.TempDir(), "results.json")
	o.Bin = buildBinaries(t)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
		if s.Ctr.Median <= 0 || s.Client.Median <= 0 {
			t.Errorf("start-to-exit %s: ctr %v ms, client %v ms", s.Name, s.Ctr.Median, s.Client.Median)
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
		if back.VolumesLs.Skipped == "" && len(back.VolumesLs.Seconds) != lsRuns {
			t.Errorf("volumes ls timed %d times, want %d", len(back.VolumesLs.Seconds), lsRuns)
		}
		if back.GC.Skipped == "" && back.GC.Remaining != 0 {
			t.Errorf("persistctl gc left %d of its leftovers", back.GC.Remaining)
		}
	}
	if len(back.Steps) == 0 {
		t.Error("no setup steps timed")
	}
	if len(back.Budget) == 0 {
		t.Error("no budget lines")
	}
	if t.Failed() {
		t.Logf("tables:\n%s", out.String())
	}
}

// requireHost skips without root or tools, except in CI, where a skipped
// bench would let it rot unseen.
func requireHost(t *testing.T, tools string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := os.Stat(filepath.Join(tools, "containerd-v2.4.2", "containerd")); err != nil {
		why = "needs the tools of scripts/install-deps.sh: " + err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the bench smoke test %s, and CI is set", why)
	}
	t.Skip(why)
}

// buildBinaries builds the shim and persistctl as make build does.
func buildBinaries(t *testing.T) string {
	t.Helper()
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin+"/", "./cmd/containerd-shim-persist-v1", "./cmd/persistctl")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	return bin
}
