package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func lint(t *testing.T, text string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, text)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestMetrics(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "cache")
	out := w.ok("metrics")
	lint(t, out)
	for _, want := range []string{
		`persist_volume_attached{backend="local",class="",holder="",namespace="default",tenant="",volume="cache"} 0`,
		`persist_volume_inodes_used{backend="local",class="",namespace="default",tenant="",volume="cache"} 1`,
		`persist_gc_leftovers{kind="journal"} 0`,
		`persist_shim_teardown_duration_seconds_count 0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s:\n%s", want, out)
		}
	}

	dir := t.TempDir()
	w.ok("metrics", "--textfile", dir)
	b, err := os.ReadFile(filepath.Join(dir, "persist.prom"))
	if err != nil {
		t.Fatal(err)
	}
	lint(t, string(b))
	if !strings.Contains(string(b), `volume="cache"`) {
		t.Errorf("textfile lacks the volume:\n%s", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("textfile dir holds %d files, want persist.prom only", len(entries))
	}

	if r := w.run(nil, "metrics", "--textfile", filepath.Join(dir, "missing")); r.code == 0 || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("--textfile of a missing dir: exit %d, %s", r.code, r.stderr)
	}
}
