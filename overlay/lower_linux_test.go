package overlay

import (
	"errors"
	"github.com/containerd-persist/containerd-persist/host"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// layout is what a test puts in each layer of an image: the tree entries
// of tree(), with HOST standing for the image's host directory.
type layout struct {
	upper, top, bottom map[string]fs.FileMode
}

func (l layout) make(t *testing.T, im image) {
	t.Helper()
	for dir, entries := range map[string]map[string]fs.FileMode{im.upper: l.upper, im.top: l.top, im.bottom: l.bottom} {
		resolved := map[string]fs.FileMode{}
		for e, m := range entries {
			resolved[strings.ReplaceAll(e, "HOST", im.host)] = m
		}
		tree(t, dir, resolved)
	}
}

// openLower is OpenLower closed at the test's end.
func openLower(t *testing.T, rootfs []mount.Mount, root, path string) (*Lower, error) {
	t.Helper()
	l, err := OpenLower(rootfs, root, path)
	if err == nil {
		t.Cleanup(func() { l.Close() })
	}
	return l, err
}

// assertDirs checks that l holds exactly the directories want, in order.
func assertDirs(t *testing.T, l *Lower, want ...string) {
	t.Helper()
	if len(l.dirs) != len(want) {
		t.Fatalf("lower has %d directories, want %d: %q", len(l.dirs), len(want), want)
	}
	for i, d := range l.dirs {
		got, err := d.Stat()
		if err != nil {
			t.Fatal(err)
		}
		w, err := os.Lstat(want[i])
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(got, w) {
			t.Errorf("lower directory %d is not %s", i, want[i])
		}
	}
}

func TestOpenLower(t *testing.T) {
	me := func(mode fs.FileMode) host.Owner { return ownOwner(mode) }
	tests := []struct {
		name    string
		layout  layout
		path    string
		bind    bool                    // rootfs is a bind mount of the top layer
		want    func(im image) []string // the directories, topmost first
		owner   host.Owner
		empty   bool
		symlink bool
		wantErr error
	}{
		{
			name:   "every layer's directory, topmost first",
			layout: layout{top: map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky, "tmp/a": 0o644}, bottom: map[string]fs.FileMode{"tmp/": 0o700, "tmp/b": 0o644}},
			path:   "/tmp",
			want:   func(im image) []string { return []string{im.top + "/tmp", im.bottom + "/tmp"} },
			owner:  me(0o777 | fs.ModeSticky),
		},
		{
			name:   "the upper first",
			layout: layout{upper: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o750}, top: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/x": 0o644}},
			path:   "/var/tmp",
			want:   func(im image) []string { return []string{im.upper + "/var/tmp", im.top + "/var/tmp"} },
			owner:  me(0o750),
		},
		{
			name:   "layers without the path are skipped",
			layout: layout{top: map[string]fs.FileMode{"etc/": 0o755}, bottom: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o730, "var/tmp/x": 0o644}},
			path:   "/var/tmp",
			want:   func(im image) []string { return []string{im.bottom + "/var/tmp"} },
			owner:  me(0o730),
		},
		{
			name:   "missing in every layer",
			layout: layout{top: map[string]fs.FileMode{"etc/": 0o755}, bottom: map[string]fs.FileMode{"var/": 0o755}},
			path:   "/var/tmp",
			want:   func(image) []string { return nil },
			owner:  DefaultOwner,
			empty:  true,
		},
		{
			name:   "empty in every layer",
			layout: layout{top: map[string]fs.FileMode{"tmp/": 0o750}, bottom: map[string]fs.FileMode{"tmp/": 0o700}},
			path:   "/tmp",
			want:   func(im image) []string { return []string{im.top + "/tmp", im.bottom + "/tmp"} },
			owner:  me(0o750),
			empty:  true,
		},
		{
			name:   "bind mounted root",
			layout: layout{top: map[string]fs.FileMode{"data/": 0o705, "data/x": 0o644}},
			path:   "/data",
			bind:   true,
			want:   func(im image) []string { return []string{im.top + "/data"} },
			owner:  me(0o705),
		},
		{
			name:    "symlinked parent in the topmost layer",
			layout:  layout{top: map[string]fs.FileMode{"var -> HOST": 0}, bottom: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700}},
			path:    "/var/tmp",
			symlink: true,
		},
		{
			name:    "symlink at the path",
			layout:  layout{upper: map[string]fs.FileMode{"tmp -> HOST/tmp": 0}, top: map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky}},
			path:    "/tmp",
			symlink: true,
		},
		{
			name:    "relative symlink inside the layer",
			layout:  layout{top: map[string]fs.FileMode{"var/": 0o755, "var/real/": 0o700, "var/tmp -> real": 0}},
			path:    "/var/tmp",
			symlink: true,
		},
		{
			name:   "a link in a lower layer is hidden by the directory above",
			layout: layout{top: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/x": 0o644}, bottom: map[string]fs.FileMode{"var -> HOST": 0}},
			path:   "/var/tmp",
			want:   func(im image) []string { return []string{im.top + "/var/tmp"} },
			owner:  me(0o700),
		},
		{
			name:   "a file on the way hides the rest",
			layout: layout{top: map[string]fs.FileMode{"var": 0o644}, bottom: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/x": 0o644}},
			path:   "/var/tmp",
			want:   func(image) []string { return nil },
			owner:  DefaultOwner,
			empty:  true,
		},
		{
			name:   "a file below a directory is hidden by it",
			layout: layout{top: map[string]fs.FileMode{"tmp/": 0o700, "tmp/x": 0o644}, bottom: map[string]fs.FileMode{"tmp": 0o644}},
			path:   "/tmp",
			want:   func(im image) []string { return []string{im.top + "/tmp"} },
			owner:  me(0o700),
		},
		{
			name:    "regular file at the path",
			layout:  layout{top: map[string]fs.FileMode{"tmp": 0o644}, bottom: map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky}},
			path:    "/tmp",
			wantErr: errdefs.ErrInvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			tt.layout.make(t, im)
			rootfs := im.overlay()
			if tt.bind {
				rootfs = []mount.Mount{{Type: "bind", Source: im.top, Options: []string{"rbind", "ro"}}}
			}
			l, err := openLower(t, rootfs, "/nonexistent", tt.path)
			switch {
			case tt.symlink:
				if !errors.Is(err, ErrSymlink) {
					t.Fatalf("OpenLower(%s) = %v, want ErrSymlink", tt.path, err)
				}
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("OpenLower(%s) = %v, want %v", tt.path, err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			assertDirs(t, l, tt.want(im)...)
			if l.Owner != tt.owner {
				t.Errorf("owner = %+v, want %+v", l.Owner, tt.owner)
			}
			if l.empty() != tt.empty {
				t.Errorf("empty = %v, want %v", l.empty(), tt.empty)
			}
		})
	}
}

// The layer directories are held open: what is planted at the path after
// they were checked is not what the overlay gets.
func TestOpenLowerHoldsTheCheckedDirectories(t *testing.T) {
	im := newImage(t)
	tree(t, im.top, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o755, "var/tmp/image-file": 0o644})
	tree(t, im.host, map[string]fs.FileMode{"var/tmp/host-file": 0o644})
	l, err := openLower(t, im.overlay(), "", "/var/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(im.top, "var"), filepath.Join(im.top, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(im.host, "var"), filepath.Join(im.top, "var")); err != nil {
		t.Fatal(err)
	}
	lowerdir := strings.TrimPrefix(l.lowerdir(), "lowerdir=")
	if _, err := os.Stat(filepath.Join(lowerdir, "image-file")); err != nil {
		t.Errorf("the lower %s lost the image's file: %v", lowerdir, err)
	}
	if _, err := os.Stat(filepath.Join(lowerdir, "host-file")); err == nil {
		t.Errorf("the lower %s follows the link planted after it was opened", lowerdir)
	}
}

func TestOpenLowerRoots(t *testing.T) {
	root := t.TempDir()
	tree(t, root, map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky, "tmp/x": 0o644})
	l, err := openLower(t, nil, root, "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	assertDirs(t, l, filepath.Join(root, "tmp"))

	_, err = openLower(t, []mount.Mount{{Type: "erofs", Source: "/dev/vdb"}}, root, "/tmp")
	if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "snapshotter") {
		t.Errorf("OpenLower of an erofs root = %v, want ErrNotImplemented naming the snapshotters that work", err)
	}

	l, err = openLower(t, []mount.Mount{{Type: "overlay", Options: []string{"userxattr", "lowerdir=" + root}}}, "", "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(l.Options, ","), "userxattr") {
		t.Errorf("options %q lack the root's userxattr, which says where whiteouts are marked", l.Options)
	}
}

func TestOpenLowerRoot(t *testing.T) {
	testenv.NeedRoot(t)
	opaque := func(t *testing.T, p string) {
		t.Helper()
		if err := unix.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		path  string // default /tmp
		setup func(t *testing.T, im image)
		want  func(im image) []string
		empty bool
	}{
		{
			name: "whiteout at the path",
			setup: func(t *testing.T, im image) {
				tree(t, im.bottom, map[string]fs.FileMode{"tmp/": 0o700, "tmp/x": 0o644})
				whiteout(t, filepath.Join(im.top, "tmp"))
			},
			want:  func(image) []string { return nil },
			empty: true,
		},
		{
			name: "whiteout below a directory",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"tmp/": 0o700, "tmp/x": 0o644})
				whiteout(t, filepath.Join(im.bottom, "tmp"))
			},
			want: func(im image) []string { return []string{im.top + "/tmp"} },
		},
		{
			name: "opaque directory at the path",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"tmp/": 0o700})
				tree(t, im.bottom, map[string]fs.FileMode{"tmp/": 0o700, "tmp/x": 0o644})
				opaque(t, filepath.Join(im.top, "tmp"))
			},
			want:  func(im image) []string { return []string{im.top + "/tmp"} },
			empty: true,
		},
		{
			name: "opaque parent",
			path: "/var/tmp",
			setup: func(t *testing.T, im image) {
				tree(t, im.upper, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700})
				tree(t, im.bottom, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/x": 0o644})
				opaque(t, filepath.Join(im.upper, "var"))
			},
			want:  func(im image) []string { return []string{im.upper + "/var/tmp"} },
			empty: true,
		},
		{
			name: "opaque parent without the path",
			path: "/var/tmp",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"var/": 0o755})
				tree(t, im.bottom, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/x": 0o644})
				opaque(t, filepath.Join(im.top, "var"))
			},
			want:  func(image) []string { return nil },
			empty: true,
		},
		{
			name: "a whiteout in the directory is content",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"tmp/": 0o700})
				tree(t, im.bottom, map[string]fs.FileMode{"tmp/": 0o700, "tmp/x": 0o644})
				whiteout(t, filepath.Join(im.top, "tmp", "x"))
			},
			want: func(im image) []string { return []string{im.top + "/tmp", im.bottom + "/tmp"} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			tt.setup(t, im)
			path := tt.path
			if path == "" {
				path = "/tmp"
			}
			l, err := openLower(t, im.overlay(), "", path)
			if err != nil {
				t.Fatal(err)
			}
			assertDirs(t, l, tt.want(im)...)
			if l.empty() != tt.empty {
				t.Errorf("empty = %v, want %v", l.empty(), tt.empty)
			}
		})
	}
}
