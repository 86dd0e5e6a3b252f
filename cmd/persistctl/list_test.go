package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// TestListMany: a table many times ls's output buffer holds every volume
// once, in order, with its holder, and the note on USED comes after it.
func TestListMany(t *testing.T) {
	w := newWorld(t)
	const n = 1500 // about 150 KiB of table
	b := volumes.Backend{Name: "local", Type: volumes.Dir, Path: filepath.Join(w.dir, "volumes")}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		id, err := volumes.NewID("default", "", fmt.Sprintf("vol-%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		dir := b.Dir(id)
		if err := os.MkdirAll(filepath.Join(dir, "fs"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := volumes.WriteMeta(dir, volumes.Meta{Name: id.Name(), Namespace: "default", Backend: b.Name, Type: b.Type, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := volumes.NewID("default", "", "vol-0777")
	if err != nil {
		t.Fatal(err)
	}
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "default", Container: "db-7", Since: created, PID: os.Getpid()}
	if err := locks.Acquire(b.LockPath(held), h, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locks.Release(b.LockPath(held), h) })

	r := w.run(nil, "volumes", "ls")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != n+1 || !strings.HasPrefix(lines[0], "NAMESPACE") {
		t.Fatalf("ls: exit %d, %d lines, want a header and %d volumes\n%s", r.code, len(lines), n, r.stderr)
	}
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[2] != fmt.Sprintf("vol-%04d", i) {
			t.Fatalf("line %d is %q, want volume vol-%04d", i+1, line, i)
		}
		if attached := f[7]; (i == 777) != (attached == "db-7") {
			t.Errorf("line %d is %q: ATTACHED TO %s", i+1, line, attached)
		}
	}
	note := "USED of dir volumes takes a walk of every file: add --du, or run persistctl volumes du NAME\n"
	if r.stderr != note {
		t.Errorf("ls stderr = %q", r.stderr)
	}
	// On one terminal, the note follows the table.
	both, err := exec.Command(binary, "--config", w.config, "volumes", "ls").CombinedOutput()
	if err != nil || !strings.HasSuffix(string(both), lines[n]+"\n"+note) {
		t.Errorf("ls with stdout and stderr together: %v, ends with %q, want the table's last line then the note", err, string(both[max(0, len(both)-300):]))
	}
	if out := w.ok("volumes", "ls", "-q"); strings.Count(out, "\n") != n || !strings.HasSuffix(out, fmt.Sprintf("vol-%04d\n", n-1)) {
		t.Errorf("ls -q printed %d lines, want %d", strings.Count(out, "\n"), n)
	}
	var list []volumeJSON
	w.okJSON(&list, "volumes", "ls", "--json")
	if len(list) != n || list[777].Holder == nil || list[777].Holder.Container != "db-7" || list[776].Holder != nil {
		t.Errorf("ls --json: %d volumes, want %d with vol-0777 held by db-7", len(list), n)
	}
}

// TestTableLikeTabwriter: ls's table is laid out as newTable and row lay
// out a table with tabwriter, whatever the cells' widths, in runes.
func TestTableLikeTabwriter(t *testing.T) {
	rows := [][]string{
		{"NAMESPACE", "TENANT", "NAME", "ATTACHED TO", "LAST"},
		{"default", "", "a", "", ""},
		{"k8s.io", "team-ä", "ünïcødé-name", "web-1 on node node-b", "2026-01-02T03:04:05Z"},
		{"x", strings.Repeat("t", 70), "", "(shared)", "-"},
		{"", "", "", "", ""},
	}
	var want bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(rows[0], "\t"))
	for _, r := range rows[1:] {
		row(tw, slices.Clone(r)...)
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	tb := &table{}
	for _, r := range rows {
		tb.add(slices.Clone(r)...)
	}
	bw := bufio.NewWriter(&got)
	tb.write(bw)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("table:\n%s\ntabwriter:\n%s", got.String(), want.String())
	}
}
