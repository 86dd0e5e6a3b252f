package shim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/state"
)

// A reservation that finds its filesystem full empties the trash, whose
// images still hold their space, and tries once more; any other failure,
// or a second ENOSPC, is the create's error.
func TestReserveEmptiesTrashWhenFull(t *testing.T) {
	full := fmt.Errorf("reserve 16MiB for image: %w", syscall.ENOSPC)
	for _, tt := range []struct {
		name    string
		results []error // of each reserve call
		wantErr error
		calls   int
		emptied bool // the trash was emptied
	}{
		{"fits", []error{nil}, nil, 1, false},
		{"full, fits after the trash", []error{full, nil}, nil, 2, true},
		{"full even then", []error{full, full}, syscall.ENOSPC, 2, true},
		{"other error", []error{syscall.EIO}, syscall.EIO, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := state.Dir(t.TempDir())
			if err := os.Mkdir(d.Trash(), 0o700); err != nil {
				t.Fatal(err)
			}
			pending := filepath.Join(d.Trash(), "0123456789abcdef.img")
			if err := os.WriteFile(pending, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			calls := 0
			reserve := reserveEmptyingTrash(func(string, uint64) error {
				calls++
				return tt.results[calls-1]
			}, d, &hosttest.Mounter{})
			err := reserve("img", 16<<20)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("reserve = %v, want %v", err, tt.wantErr)
			}
			if calls != tt.calls {
				t.Errorf("reserve tried %d times, want %d", calls, tt.calls)
			}
			if _, err := os.Stat(pending); os.IsNotExist(err) != tt.emptied {
				t.Errorf("trash emptied: %v, want %v", os.IsNotExist(err), tt.emptied)
			}
		})
	}
}

// In a daemon whose exit waits for it, a trashed image is unlinked in the
// background with whatever else the trash holds, and wait sees it done;
// elsewhere images are unlinked in place.
func TestTrashBinUnlinksLater(t *testing.T) {
	d := state.Dir(t.TempDir())
	if (&trashBin{}).unlinker(d) != nil {
		t.Fatal("a process whose exit does not wait got a background unlinker")
	}
	if err := os.Mkdir(d.Trash(), 0o700); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range []string{"0000000000000001.img", "0000000000000002.img"} { // the second: a crash's
		files = append(files, filepath.Join(d.Trash(), name))
		if err := os.WriteFile(files[len(files)-1], nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := &trashBin{waited: true}
	bin.unlinker(d)(files[0])
	bin.wait()
	for _, f := range files {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still in the trash after wait: %v", f, err)
		}
	}
	if len(bin.pending) != 0 {
		t.Errorf("%d unlinks still pending after wait", len(bin.pending))
	}
}
