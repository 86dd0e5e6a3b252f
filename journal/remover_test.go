package journal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// removingUndoer removes the files of File steps itself.
type removingUndoer struct {
	recordingUndoer
}

func (u *removingUndoer) Remove(path string) error { return u.do("remove", path) }

// An Undoer that is a Remover is given the files of File steps, in their
// place in the undo, and its error is the step's; directories are still
// removed by Undo, and a plain Undoer's files too.
func TestUndoFileStepsByRemover(t *testing.T) {
	dir := t.TempDir()
	sub, file := filepath.Join(dir, "sub"), filepath.Join(dir, "sub", "0.img")
	steps := []Step{{Kind: Dir, Path: sub}, {Kind: File, Path: file}, {Kind: Mount, Path: sub}}
	mk := func() {
		if err := os.MkdirAll(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	mk()
	r := &removingUndoer{}
	// The remover leaves the file, so the directory cannot go.
	if err := Undo(steps, r); err == nil {
		t.Fatal("Undo removed a directory that still holds the file the Remover was given")
	}
	if want := []string{"unmount " + sub, "remove " + file}; !slices.Equal(r.calls, want) {
		t.Errorf("calls %q, want %q", r.calls, want)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("Undo removed the file itself: %v", err)
	}

	failed := errors.New("no trash")
	r = &removingUndoer{recordingUndoer{fail: map[string]error{file: failed}}}
	if err := Undo(steps, r); !errors.Is(err, failed) {
		t.Errorf("Undo = %v, want the Remover's error", err)
	}

	plain := &recordingUndoer{}
	if err := Undo(steps, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sub); !os.IsNotExist(err) {
		t.Errorf("a plain Undoer's undo left %s: %v", sub, err)
	}
}
