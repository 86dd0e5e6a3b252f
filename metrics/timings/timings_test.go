//go:build linux

package timings

import (
	"os"
	"strings"
	"testing"
)

func TestAppendRead(t *testing.T) {
	dir := t.TempDir()
	want := []Record{
		{Op: Setup, Namespace: "default", Container: "a", Class: "web", Seconds: 0.25, Scratch: []string{"/tmp"}},
		{Op: Teardown, Namespace: "default", Container: "a", Seconds: 0.5},
	}
	for _, r := range want {
		if err := Append(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	// A torn line from a crash is skipped.
	f, err := os.OpenFile(Path(dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"op":"setup","names`)
	f.Close()
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Class != "web" || got[0].Scratch[0] != "/tmp" || got[1].Op != Teardown || got[1].Seconds != 0.5 {
		t.Fatalf("read %+v, want %+v", got, want)
	}
}

func TestRotate(t *testing.T) {
	dir := t.TempDir()
	r := Record{Op: Setup, Namespace: "default", Container: strings.Repeat("c", 1000), Seconds: 1}
	n := 0
	for {
		if err := Append(dir, r); err != nil {
			t.Fatal(err)
		}
		n++
		if _, err := os.Stat(Path(dir) + ".1"); err == nil {
			break
		}
		if n > 2*MaxSize/1000 {
			t.Fatal("record file never rotated")
		}
	}
	if err := Append(dir, r); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n+1 {
		t.Fatalf("read %d records after rotation, want %d", len(got), n+1)
	}
	if st, err := os.Stat(Path(dir)); err != nil || st.Size() > 2000 {
		t.Fatalf("current file after rotation: %v %v", st, err)
	}
}
