//go:build linux

package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
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
			f := &hosttest.Mounter{}
			s := Open(stateRoots(filepath.Join(tmp, "state")), f, NewLocks())
			err := s.Create(b, vid("ns", "v"), Meta{Size: c.size})
			if c.wantErr {
				if !errdefs.IsResourceExhausted(err) || len(f.Calls) != 0 {
					t.Fatalf("Create = %v after calls %+v, want ErrResourceExhausted before any image", err, f.Calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Calls) != 1 || !f.Calls[0].Image.Journaled || f.Calls[0].Image.Sparse != c.overcommit {
				t.Fatalf("calls = %+v, want one journaled image, sparse = %v", f.Calls, c.overcommit)
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
	s := Open(stateRoots(filepath.Join(tmp, "state")), &hosttest.Mounter{}, NewLocks())
	if err := s.Create(b, vid("ns", "d"), Meta{}); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMeta(b.Dir(vid("ns", "d"))); err != nil || m.Overcommit {
		t.Errorf("dir volume meta = %+v, %v; want no overcommit", m, err)
	}
}
