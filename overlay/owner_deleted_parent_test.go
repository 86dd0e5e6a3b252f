//go:build linux

package overlay

import (
	"io/fs"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

func TestLookupOwnerDeletedParent(t *testing.T) {
	testenv.NeedRoot(t)
	tests := []struct {
		name  string
		setup func(t *testing.T, im image)
	}{
		{"whiteout parent", func(t *testing.T, im image) {
			whiteout(t, filepath.Join(im.top, "var"))
		}},
		{"opaque parent", func(t *testing.T, im image) {
			tree(t, im.top, map[string]fs.FileMode{"var/": 0o755})
			if err := unix.Setxattr(filepath.Join(im.top, "var"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"file parent", func(t *testing.T, im image) {
			tree(t, im.top, map[string]fs.FileMode{"var": 0o644})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			tree(t, im.bottom, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700})
			chown(t, filepath.Join(im.bottom, "var", "tmp"), 1234, 5678)
			tt.setup(t, im)
			got, err := LookupOwner(im.overlay(), "/var/tmp")
			if err != nil {
				t.Fatal(err)
			}
			if got != DefaultOwner {
				t.Errorf("LookupOwner(/var/tmp) = %+v, want DefaultOwner: the top layer deletes /var, so the image has no /var/tmp", got)
			}
		})
	}
}
