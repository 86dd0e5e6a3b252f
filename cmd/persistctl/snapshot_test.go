package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/containerd-persist/containerd-persist/volumes"
)

func TestSnapshotCommands(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "app")
	content := filepath.Join(w.dir, "volumes", "default", "app", "fs")
	if err := os.WriteFile(filepath.Join(content, "a"), []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}

	var snap volumes.Snapshot
	w.okJSON(&snap, "volumes", "snapshot", "create", "--json", "app", "s1")
	if snap.Name != "s1" || snap.Method != volumes.MethodTree || snap.Live || snap.Created.IsZero() {
		t.Errorf("snapshot create --json = %+v", snap)
	}
	out := w.ok("volumes", "snapshot", "create", "app")
	if !regexp.MustCompile(`^created snapshot \d{8}T\d{6}Z of volume default/app \(tree copy\)\n$`).MatchString(out) {
		t.Errorf("snapshot create with the default name: %q", out)
	}
	r := w.run(nil, "volumes", "snapshot", "create", "app", "s1")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("second snapshot s1: exit %d %q", r.code, r.stderr)
	}
	r = w.run(nil, "volumes", "snapshot", "create", "app", "../x")
	if r.code != 1 || !strings.Contains(r.stderr, "snapshot name") {
		t.Errorf("bad snapshot name: exit %d %q", r.code, r.stderr)
	}

	if err := os.WriteFile(filepath.Join(content, "a"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	var snaps []volumes.Snapshot
	w.okJSON(&snaps, "volumes", "snapshot", "ls", "--json", "app")
	if len(snaps) != 2 || snaps[0].Name != "s1" {
		t.Fatalf("snapshot ls --json = %+v", snaps)
	}
	if out := w.ok("volumes", "snapshot", "ls", "app"); !strings.HasPrefix(out, "SNAPSHOT") || !strings.Contains(out, "s1") {
		t.Errorf("snapshot ls: %q", out)
	}
	if out := w.ok("volumes", "inspect", "app"); !strings.Contains(out, "snapshot") || !strings.Contains(out, "s1: ") {
		t.Errorf("inspect lists no snapshot: %q", out)
	}

	w.ok("volumes", "snapshot", "restore", "app", "s1")
	if b, err := os.ReadFile(filepath.Join(content, "a")); err != nil || string(b) != "one" {
		t.Errorf("after restore a = %q, %v", b, err)
	}
	r = w.run(nil, "volumes", "snapshot", "restore", "app", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("restore of a missing snapshot: exit %d %q", r.code, r.stderr)
	}

	var clone volumeJSON
	w.okJSON(&clone, "volumes", "clone", "--json", "app", "app2")
	if clone.Name != "app2" || clone.Backend != "local" {
		t.Errorf("clone --json = %+v", clone)
	}
	if b, err := os.ReadFile(filepath.Join(w.dir, "volumes", "default", "app2", "fs", "a")); err != nil || string(b) != "one" {
		t.Errorf("clone's a = %q, %v", b, err)
	}
	r = w.run(nil, "volumes", "clone", "app", "app2")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("clone onto an existing volume: exit %d %q", r.code, r.stderr)
	}

	r = w.run(nil, "volumes", "reset", "app")
	if r.code != 1 || !strings.Contains(r.stderr, "no root layer") {
		t.Errorf("reset of a volume with no root layer: exit %d %q", r.code, r.stderr)
	}
	if err := os.MkdirAll(filepath.Join(content, "upper", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	w.ok("volumes", "reset", "app")
	if _, err := os.Stat(filepath.Join(content, "upper")); !os.IsNotExist(err) {
		t.Errorf("reset left upper: %v", err)
	}

	w.ok("volumes", "snapshot", "rm", "app", "s1")
	w.okJSON(&snaps, "volumes", "snapshot", "ls", "--json", "app")
	if len(snaps) != 1 {
		t.Errorf("snapshot ls after rm = %+v", snaps)
	}
	w.ok("volumes", "rm", "app", "app2")
	if left, _ := os.ReadDir(filepath.Join(w.dir, "volumes", "default")); len(left) != 0 {
		t.Errorf("left after rm: %v", left)
	}
}
