package state

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/journal"
)

func TestMoveToTrash(t *testing.T) {
	d := Dir(t.TempDir())
	img := filepath.Join(string(d), "scratch", "ns", "c", "0.img")
	mustT(t, os.MkdirAll(filepath.Dir(img), 0o700))
	mustT(t, os.WriteFile(img, []byte("image"), 0o600))

	// The trash is made when first needed.
	trashed, err := d.MoveToTrash(img)
	mustT(t, err)
	if filepath.Dir(trashed) != d.Trash() {
		t.Fatalf("moved to %s, not into the trash %s", trashed, d.Trash())
	}
	if b, err := os.ReadFile(trashed); err != nil || string(b) != "image" {
		t.Fatalf("the trash holds %q, %v; want the image", b, err)
	}
	if _, err := os.Lstat(img); !os.IsNotExist(err) {
		t.Fatalf("the image is still in place: %v", err)
	}
	// A file removed already is success, with nothing moved.
	if again, err := d.MoveToTrash(img); again != "" || err != nil {
		t.Fatalf("MoveToTrash of a missing file = %q, %v; want \"\", nil", again, err)
	}

	mustT(t, os.WriteFile(img, nil, 0o600))
	second, err := d.MoveToTrash(img)
	mustT(t, err)
	if second == trashed {
		t.Fatalf("two images got one name in the trash: %s", second)
	}
	n, err := d.EmptyTrash()
	if n != 2 || err != nil {
		t.Fatalf("EmptyTrash = %d, %v; want 2, nil", n, err)
	}
	if n, err := d.EmptyTrash(); n != 0 || err != nil {
		t.Fatalf("EmptyTrash of an empty trash = %d, %v; want 0, nil", n, err)
	}
	// A state dir without a trash has nothing in it.
	if n, err := Dir(t.TempDir()).EmptyTrash(); n != 0 || err != nil {
		t.Fatalf("EmptyTrash without a trash = %d, %v; want 0, nil", n, err)
	}
}

// The images of a journal's File steps go to the trash and are handed to
// Unlink when it is set; without it they are unlinked in place.
func TestUndoerRemovesImagesByTrash(t *testing.T) {
	for _, later := range []bool{false, true} {
		d := Dir(t.TempDir())
		img := filepath.Join(string(d), "scratch", "ns", "c", "0.img")
		mustT(t, os.MkdirAll(filepath.Dir(img), 0o700))
		mustT(t, os.WriteFile(img, []byte("image"), 0o600))
		jpath := d.Journal("ns", "c")
		j, err := journal.Create(jpath)
		mustT(t, err)
		mustT(t, j.Record(journal.Step{Kind: journal.File, Path: img}))
		mustT(t, j.Close())

		var handed []string
		u := Undoer{Mounter: &hosttest.Mounter{}}
		if later {
			u.State, u.Unlink = OfJournal(jpath), func(p string) { handed = append(handed, p) }
		}
		mustT(t, u.Release(jpath))
		if _, err := os.Lstat(img); !os.IsNotExist(err) {
			t.Errorf("later=%v: the image is still in place: %v", later, err)
		}
		left, _ := readDir(d.Trash())
		if !later {
			if len(left) != 0 || handed != nil {
				t.Errorf("unlinking in place left %v in the trash, handed %v", left, handed)
			}
			continue
		}
		if len(handed) != 1 || !slices.Equal(left, []string{filepath.Base(handed[0])}) {
			t.Errorf("handed %v to Unlink with %v in the trash; want the one image", handed, left)
		}
	}
}
