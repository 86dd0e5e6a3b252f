package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

// A loopfile volume's image is reserved unless its backend overcommits;
// an overcommitting backend takes a volume larger than its free space, and
// the volume's metadata says it was overcommitted.
func TestCreateOvercommit(t *testing.T) {
	tmp := t.TempDir()
	const huge = 1 << 60 // more than any test filesystem holds
	for _, c := range []struct {
		name       string
		overcommit bool
		size       uint64
		wantErr    bool
	}{
		{"reserved", false, 1 << 20, false},
		{"reserved does not fit", false, huge, true},
		{"overcommit does not fit", true, huge, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := Backend{Name: "sized", Type: Loopfile, Path: filepath.Join(tmp, c.name), Overcommit: c.overcommit}
			if err := os.Mkdir(b.Path, 0o700); err != nil {
				t.Fatal(err)
			}
			f := &recordingMounter{}
			s := Open(filepath.Join(tmp, "state"), f, NewLocks())
			err := s.Create(b, vid("ns", "v"), Meta{Size: c.size})
			if c.wantErr {
				if !errdefs.IsResourceExhausted(err) || len(f.calls) != 0 {
					t.Fatalf("Create = %v after calls %+v, want ErrResourceExhausted before any image", err, f.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.calls) != 1 || !f.calls[0].journaled || f.calls[0].sparse != c.overcommit {
				t.Fatalf("calls = %+v, want one journaled image, sparse = %v", f.calls, c.overcommit)
			}
			m, err := ReadMeta(b.Dir(vid("ns", "v")))
			if err != nil || m.Overcommit != c.overcommit {
				t.Errorf("meta = %+v, %v; want overcommit = %v", m, err, c.overcommit)
			}
		})
	}
	// A dir backend never records overcommit.
	b := Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "dir"), Overcommit: true}
	if err := os.Mkdir(b.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	s := Open(filepath.Join(tmp, "state"), &recordingMounter{}, NewLocks())
	if err := s.Create(b, vid("ns", "d"), Meta{}); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMeta(b.Dir(vid("ns", "d"))); err != nil || m.Overcommit {
		t.Errorf("dir volume meta = %+v, %v; want no overcommit", m, err)
	}
}
