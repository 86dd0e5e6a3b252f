package journal

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// recordingUndoer records the steps it undoes, in order, and fails the paths
// in fail with their error.
type recordingUndoer struct {
	calls []string
	fail  map[string]error
}

func (u *recordingUndoer) do(op, path string) error {
	u.calls = append(u.calls, op+" "+path)
	return u.fail[path]
}

func (u *recordingUndoer) Unmount(path string) error { return u.do("unmount", path) }
func (u *recordingUndoer) Unlock(path string) error  { return u.do("unlock", path) }
func (u *recordingUndoer) Sync(path string) error    { return u.do("sync", path) }

// writeJournal writes steps to a new journal at path and closes it, as a
// setup whose process then died leaves it.
func writeJournal(t *testing.T, path string, steps ...Step) {
	t.Helper()
	j, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if err := j.Record(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal", "ns", "c1")
	steps := []Step{
		{Kind: Lock, Path: "/state/locks/ns/v"},
		{Kind: Dir, Path: "/state/scratch/ns/c1"},
		{Kind: File, Path: "/state/scratch/ns/c1/0.img"},
		{Kind: Mount, Path: "/state/scratch/ns/c1/0"},
		{Kind: Sync, Path: "/srv/v/fs"},
	}
	j, err := Create(path) // makes the parent directories
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if j.Path() != path {
		t.Fatalf("Path() = %q, want %q", j.Path(), path)
	}
	for i, s := range steps {
		if err := j.Record(s); err != nil {
			t.Fatal(err)
		}
		// Each step is on disk as soon as Record returns, while the journal
		// is still open: a process killed right after has left it there.
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, steps[:i+1]) {
			t.Fatalf("after %d records Read = %v, want %v", i+1, got, steps[:i+1])
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestCreateExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	writeJournal(t, path, Step{Kind: Dir, Path: "/x"})
	if _, err := Create(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create over a leftover journal = %v, want ErrExist", err)
	}
	// The leftover is what cleanup needs: Create must not have touched it.
	got, err := Read(path)
	if err != nil || !reflect.DeepEqual(got, []Step{{Kind: Dir, Path: "/x"}}) {
		t.Fatalf("leftover journal after Create = %v, %v", got, err)
	}
}

func TestRead(t *testing.T) {
	const (
		dirLine   = `{"kind":"dir","path":"/a"}`
		mountLine = `{"kind":"mount","path":"/a"}`
	)
	tests := []struct {
		name    string
		data    string
		want    []Step
		wantErr string // substring; "" for success
	}{
		{name: "empty", data: "", want: nil},
		{name: "whole lines", data: dirLine + "\n" + mountLine + "\n",
			want: []Step{{Dir, "/a", ""}, {Mount, "/a", ""}}},
		{name: "torn last line", data: dirLine + "\n" + `{"kind":"mou`,
			want: []Step{{Dir, "/a", ""}}},
		{name: "torn only line", data: `{"kind"`, want: nil},
		{name: "bad middle line", data: dirLine + "\nnot json\n" + mountLine + "\n",
			wantErr: "line 2"},
		{name: "bad first line", data: "{]\n" + dirLine + "\n",
			wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := Read(path)
			if tt.wantErr != "" {
				var syntax *json.SyntaxError
				if !errors.As(err, &syntax) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Read = %v, %v; want an error naming %s and %q", got, err, path, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Read = %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of a missing journal = %v, want ErrNotExist", err)
	}
}

// A failed unmount keeps only the lock it names: its own volume's.
func TestUndoKeepsOnlyTheFailedVolumesLock(t *testing.T) {
	steps := []Step{
		{Lock, "/locks/a", ""}, {Mount, "/ma", "/locks/a"}, {Sync, "/ma", "/locks/a"},
		{Lock, "/locks/b", ""}, {Mount, "/mb", "/locks/b"}, {Sync, "/mb", "/locks/b"},
	}
	u := &recordingUndoer{fail: map[string]error{"/mb": errors.New("device or resource busy")}}
	Undo(steps, u)
	want := []string{"sync /mb", "unmount /mb", "sync /ma", "unmount /ma", "unlock /locks/a"}
	if !reflect.DeepEqual(u.calls, want) {
		t.Errorf("undo calls = %q, want %q", u.calls, want)
	}
}

// A failed scratch unmount names no lock, and keeps none: the volume
// beside it was released whole.
func TestUndoScratchFailureKeepsNoLock(t *testing.T) {
	steps := []Step{
		{Lock, "/locks/v", ""}, {Mount, "/mv", "/locks/v"}, {Sync, "/mv", "/locks/v"},
		{Dir, "/scratch", ""}, {Mount, "/scratch/0", ""},
	}
	u := &recordingUndoer{fail: map[string]error{"/scratch/0": errors.New("device or resource busy")}}
	Undo(steps, u)
	want := []string{"unmount /scratch/0", "sync /mv", "unmount /mv", "unlock /locks/v"}
	if !reflect.DeepEqual(u.calls, want) {
		t.Errorf("undo calls = %q, want %q", u.calls, want)
	}
}

func TestUndo(t *testing.T) {
	errBusy := errors.New("device busy")
	errIO := errors.New("input/output error")
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "dir")
	file := filepath.Join(tmp, "file")
	full := filepath.Join(tmp, "full")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(full, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	steps := []Step{
		{Lock, "/locks/v", ""},
		{Dir, dir, ""},
		{Dir, full, ""},                          // not empty: stays, and says so
		{Dir, filepath.Join(tmp, "never"), ""},   // never made: success
		{File, filepath.Join(tmp, "nofile"), ""}, // never made: success
		{Mount, "/m1", ""},
		{File, file, ""},
		{Sync, "/v/fs", "/locks/v"},
		{Mount, "/m2", "/locks/v"},
		{Kind("bogus"), "/b", ""},
	}
	u := &recordingUndoer{fail: map[string]error{"/m2": errBusy, "/v/fs": errIO}}
	err := Undo(steps, u)

	// The volume's unmount and sync failed, so its lock is kept: another
	// container must not mount it while it may still be mounted here.
	wantCalls := []string{"unmount /m2", "sync /v/fs", "unmount /m1"}
	if !reflect.DeepEqual(u.calls, wantCalls) {
		t.Errorf("undo calls = %q, want %q (reverse order, on past failures, lock kept)", u.calls, wantCalls)
	}
	if !errors.Is(err, errBusy) || !errors.Is(err, errIO) {
		t.Errorf("Undo = %v, want both failures joined", err)
	}
	for _, want := range []string{"undo mount /m2", "undo sync /v/fs", "undo dir " + full, `unknown step kind "bogus"`, "kept lock /locks/v"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Undo error %v does not say %q", err, want)
		}
	}
	for _, p := range []string{dir, file} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after Undo: %v", p, err)
		}
	}
	// Undo never removes recursively: a directory with content may be user
	// data under a mount that did not go away.
	if _, err := os.Stat(filepath.Join(full, "child")); err != nil {
		t.Errorf("Undo removed a non-empty directory's content: %v", err)
	}

	if err := Undo(nil, u); err != nil {
		t.Errorf("Undo of no steps = %v", err)
	}
}

func TestReplay(t *testing.T) {
	errBusy := errors.New("device busy")
	steps := []Step{{Lock, "/locks/v", ""}, {Mount, "/m1", ""}, {Mount, "/m2", ""}}

	t.Run("removes the journal when all steps are undone", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j")
		writeJournal(t, path, steps...)
		u := &recordingUndoer{}
		if err := Replay(path, u); err != nil {
			t.Fatal(err)
		}
		if want := []string{"unmount /m2", "unmount /m1", "unlock /locks/v"}; !reflect.DeepEqual(u.calls, want) {
			t.Errorf("calls = %q, want %q", u.calls, want)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("journal left after a full replay: %v", err)
		}
	})

	t.Run("keeps the journal when a step fails, for a retry", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j")
		writeJournal(t, path, steps...)
		u := &recordingUndoer{fail: map[string]error{"/m1": errBusy}}
		if err := Replay(path, u); !errors.Is(err, errBusy) {
			t.Fatalf("Replay = %v, want %v", err, errBusy)
		}
		if got, err := Read(path); err != nil || !reflect.DeepEqual(got, steps) {
			t.Fatalf("journal after a failed replay = %v, %v; want it unchanged", got, err)
		}
		// The retry undoes everything again (undo is idempotent) and finishes.
		u = &recordingUndoer{}
		if err := Replay(path, u); err != nil {
			t.Fatal(err)
		}
		if len(u.calls) != 3 {
			t.Errorf("retry calls = %q, want all three steps", u.calls)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("journal left after the retry: %v", err)
		}
	})

	t.Run("missing journal is success", func(t *testing.T) {
		u := &recordingUndoer{}
		if err := Replay(filepath.Join(t.TempDir(), "missing"), u); err != nil {
			t.Fatal(err)
		}
		if len(u.calls) != 0 {
			t.Errorf("calls = %q, want none", u.calls)
		}
	})

	t.Run("bad journal is an error and is kept", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j")
		if err := os.WriteFile(path, []byte("garbage\n{\"kind\":\"dir\",\"path\":\"/x\"}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		u := &recordingUndoer{}
		if err := Replay(path, u); err == nil {
			t.Fatal("Replay of a corrupt journal succeeded")
		}
		if len(u.calls) != 0 {
			t.Errorf("calls = %q, want none", u.calls)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("corrupt journal removed: %v", err)
		}
	})

	t.Run("open journal is in use and kept", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "j")
		j, err := Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for _, s := range steps {
			if err := j.Record(s); err != nil {
				t.Fatal(err)
			}
		}
		u := &recordingUndoer{}
		if err := Replay(path, u); !errors.Is(err, ErrInUse) {
			t.Fatalf("Replay of an open journal = %v, want ErrInUse", err)
		}
		if len(u.calls) != 0 {
			t.Errorf("Replay undid a live container's steps: %q", u.calls)
		}
		if got, err := Read(path); err != nil || !reflect.DeepEqual(got, steps) {
			t.Fatalf("open journal after Replay = %v, %v; want it unchanged", got, err)
		}
		// The container is gone once its journal is closed.
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		if err := Replay(path, u); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("journal left: %v", err)
		}
	})
}

func TestInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	if InUse(path) {
		t.Error("InUse of a missing journal = true")
	}
	j, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if !InUse(path) {
		t.Error("InUse of an open journal = false")
	}
	// Asking must not take the lock from its holder.
	if !InUse(path) {
		t.Error("InUse changed after being asked")
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if InUse(path) {
		t.Error("InUse of a closed journal = true")
	}
}

func TestBeforeRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	errStop := errors.New("stop")
	var seen []int
	j.BeforeRecord(func(n int) error {
		seen = append(seen, n)
		if n == 2 {
			return errStop
		}
		return nil
	})
	for _, p := range []string{"/a", "/b", "/c"} {
		err = j.Record(Step{Kind: Dir, Path: p})
	}
	if !errors.Is(err, errStop) {
		t.Fatalf("third Record = %v, want the hook's error", err)
	}
	if !reflect.DeepEqual(seen, []int{0, 1, 2}) || j.Recorded() != 2 {
		t.Errorf("hook saw %v, Recorded = %d; want [0 1 2], 2", seen, j.Recorded())
	}
	if got, _ := Read(path); !reflect.DeepEqual(got, []Step{{Dir, "/a", ""}, {Dir, "/b", ""}}) {
		t.Errorf("journal = %v, want the steps before the failed one", got)
	}
}

// stoppingUndoer fails before undoing step stopAt (counted from the end).
type stoppingUndoer struct {
	recordingUndoer
	stopAt int
	err    error
}

func (u *stoppingUndoer) BeforeUndo(done int) error {
	if done == u.stopAt {
		return u.err
	}
	return nil
}

func TestBeforeUndo(t *testing.T) {
	errStop := errors.New("stop")
	errBusy := errors.New("busy")
	u := &stoppingUndoer{stopAt: 2, err: errStop}
	u.fail = map[string]error{"/m3": errBusy}
	steps := []Step{{Mount, "/m1", ""}, {Mount, "/m2", ""}, {Mount, "/m3", ""}, {Mount, "/m4", ""}}
	err := Undo(steps, u)
	if !errors.Is(err, errStop) || !errors.Is(err, errBusy) {
		t.Errorf("Undo = %v, want the stop and the failure before it", err)
	}
	if want := []string{"unmount /m4", "unmount /m3"}; !reflect.DeepEqual(u.calls, want) {
		t.Errorf("calls = %q, want %q", u.calls, want)
	}
}
