package overlay

import (
	"errors"
	"github.com/containerd-persist/containerd-persist/host"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// tree makes entries under root: a name ending in "/" is a directory with
// the given mode, "name -> target" a symlink, anything else a regular file.
func tree(t testing.TB, root string, entries map[string]fs.FileMode) {
	t.Helper()
	for _, e := range slices.Sorted(maps.Keys(entries)) { // parents first
		if name, target, ok := strings.Cut(e, " -> "); ok {
			p := filepath.Join(root, name)
			mkdirAll(t, filepath.Dir(p))
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p := filepath.Join(root, e)
		mkdirAll(t, filepath.Dir(p))
		var err error
		if strings.HasSuffix(e, "/") {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, nil, 0o600)
		}
		if err == nil {
			err = os.Chmod(p, entries[e])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mkdirAll(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// image is an overlay image of an upper and two lower layers under t's
// temporary directory, and a "host" directory beside them that the image's
// symlinks point at.
type image struct {
	upper, top, bottom, host string
}

func newImage(t *testing.T) image {
	tmp := t.TempDir()
	im := image{
		upper:  filepath.Join(tmp, "upper"),
		top:    filepath.Join(tmp, "top"),
		bottom: filepath.Join(tmp, "bottom"),
		host:   filepath.Join(tmp, "host"),
	}
	for _, d := range []string{im.upper, im.top, im.bottom} {
		mkdirAll(t, d)
	}
	// What the host has at /tmp, but marked: a lookup that follows an
	// image's symlink out to the host would report mode 0711.
	tree(t, im.host, map[string]fs.FileMode{"tmp/": 0o711, "var/tmp/": 0o711})
	return im
}

func (im image) overlay() []mount.Mount {
	return []mount.Mount{{
		Type:    "overlay",
		Source:  "overlay",
		Options: []string{"index=off", "workdir=/unused", "upperdir=" + im.upper, "lowerdir=" + im.top + ":" + im.bottom},
	}}
}

func TestLookupOwner(t *testing.T) {
	me := func(mode fs.FileMode) host.Owner { return ownOwner(mode) }
	tests := []struct {
		name    string
		upper   map[string]fs.FileMode
		top     map[string]fs.FileMode
		bottom  map[string]fs.FileMode
		path    string
		bind    bool // rootfs is a bind mount of the top layer
		want    host.Owner
		symlink bool // want ErrSymlink, with DefaultOwner
		wantErr string
	}{
		{
			name:   "topmost layer wins",
			top:    map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky},
			bottom: map[string]fs.FileMode{"tmp/": 0o700},
			path:   "/tmp",
			want:   me(0o777 | fs.ModeSticky),
		},
		{
			name:  "upper is above the lower layers",
			upper: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o750},
			top:   map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700},
			path:  "/var/tmp",
			want:  me(0o750),
		},
		{
			name:   "layers without the path are skipped",
			top:    map[string]fs.FileMode{"etc/": 0o755},
			bottom: map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o730 | fs.ModeSticky},
			path:   "/var/tmp",
			want:   me(0o730 | fs.ModeSticky),
		},
		{
			name: "bind mounted root",
			top:  map[string]fs.FileMode{"data/": 0o705},
			path: "/data",
			bind: true,
			want: me(0o705),
		},
		{
			name:   "missing in every layer",
			top:    map[string]fs.FileMode{"etc/": 0o755},
			bottom: map[string]fs.FileMode{"var/": 0o755},
			path:   "/var/tmp",
			want:   DefaultOwner,
		},
		{
			name:    "symlinked parent to the host root",
			top:     map[string]fs.FileMode{"var -> /": 0},
			bottom:  map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700},
			path:    "/var/tmp",
			want:    DefaultOwner,
			symlink: true,
		},
		{
			name:    "symlinked parent to a host directory",
			top:     map[string]fs.FileMode{"var -> HOST": 0},
			path:    "/var/tmp",
			want:    DefaultOwner,
			symlink: true,
		},
		{
			name:    "symlinked parent climbing out of the layer",
			top:     map[string]fs.FileMode{"var -> ../host": 0},
			path:    "/var/tmp",
			want:    DefaultOwner,
			symlink: true,
		},
		{
			name:    "relative symlink inside the layer",
			top:     map[string]fs.FileMode{"var/": 0o755, "var/real/": 0o700, "var/tmp -> real": 0},
			path:    "/var/tmp",
			want:    DefaultOwner,
			symlink: true,
		},
		{
			name:    "symlink at the path",
			top:     map[string]fs.FileMode{"tmp -> HOST/tmp": 0},
			path:    "/tmp",
			want:    DefaultOwner,
			symlink: true,
		},
		{
			name:    "regular file",
			top:     map[string]fs.FileMode{"tmp": 0o644},
			bottom:  map[string]fs.FileMode{"tmp/": 0o1777},
			path:    "/tmp",
			wantErr: "/tmp is not a directory in the image",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			for dir, entries := range map[string]map[string]fs.FileMode{im.upper: tt.upper, im.top: tt.top, im.bottom: tt.bottom} {
				resolved := map[string]fs.FileMode{}
				for e, m := range entries {
					resolved[strings.ReplaceAll(e, "HOST", im.host)] = m
				}
				tree(t, dir, resolved)
			}
			rootfs := im.overlay()
			if tt.bind {
				rootfs = []mount.Mount{{Type: "bind", Source: im.top, Options: []string{"rbind", "ro"}}}
			}
			got, err := LookupOwner(rootfs, tt.path)
			if tt.symlink {
				if !errors.Is(err, ErrSymlink) || got != DefaultOwner {
					t.Fatalf("LookupOwner(%s) = %+v, %v; want DefaultOwner and ErrSymlink", tt.path, got, err)
				}
				return
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LookupOwner = %+v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("LookupOwner(%s) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestLookupOwnerNoLayers(t *testing.T) {
	for _, rootfs := range [][]mount.Mount{nil, {{Type: "ext4", Source: "/dev/vdb"}}} {
		got, err := LookupOwner(rootfs, "/tmp")
		if err != nil || got != DefaultOwner {
			t.Errorf("LookupOwner(%v) = %+v, %v; want DefaultOwner", rootfs, got, err)
		}
	}
}

func TestLookupOwnerRoot(t *testing.T) {
	testenv.NeedRoot(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, im image)
		path    string
		want    host.Owner
		wantErr string
	}{
		{
			name: "owner of the topmost layer",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"tmp/": 0o770 | fs.ModeSticky})
				tree(t, im.bottom, map[string]fs.FileMode{"tmp/": 0o700})
				chown(t, filepath.Join(im.top, "tmp"), 1234, 5678)
			},
			path: "/tmp",
			want: host.Owner{Mode: 0o770 | fs.ModeSticky, UID: 1234, GID: 5678},
		},
		{
			name: "whiteout",
			setup: func(t *testing.T, im image) {
				tree(t, im.bottom, map[string]fs.FileMode{"tmp/": 0o700})
				chown(t, filepath.Join(im.bottom, "tmp"), 1234, 5678)
				whiteout(t, filepath.Join(im.top, "tmp"))
			},
			path: "/tmp",
			want: DefaultOwner,
		},
		{
			name: "whiteout in the upper",
			setup: func(t *testing.T, im image) {
				tree(t, im.top, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700})
				whiteout(t, filepath.Join(im.upper, "var", "tmp"))
			},
			path: "/var/tmp",
			want: DefaultOwner,
		},
		{
			name: "character device",
			setup: func(t *testing.T, im image) {
				if err := unix.Mknod(filepath.Join(im.top, "tmp"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
					t.Fatal(err)
				}
			},
			path:    "/tmp",
			wantErr: "not a directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			tt.setup(t, im)
			got, err := LookupOwner(im.overlay(), tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LookupOwner = %+v, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("LookupOwner(%s) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func chown(t *testing.T, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

// whiteout makes an overlay whiteout at p: a character device 0:0.
func whiteout(t *testing.T, p string) {
	t.Helper()
	mkdirAll(t, filepath.Dir(p))
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
}

func TestOwnerMkdir(t *testing.T) {
	old := unix.Umask(0o077) // Mkdir must not depend on the caller's umask
	t.Cleanup(func() { unix.Umask(old) })
	tests := []fs.FileMode{
		0o777 | fs.ModeSticky,
		0o755 | fs.ModeSticky,
		0o755,
		0o777,
		0o700,
		0o500,
	}
	for _, mode := range tests {
		t.Run(mode.String(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			o := ownOwner(mode)
			if err := o.Mkdir(dir); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != mode {
				t.Errorf("mode = %v, want a directory with %v", fi.Mode(), mode)
			}
			if uid, gid := ids(t, dir); uid != o.UID || gid != o.GID {
				t.Errorf("owner = %d:%d, want %d:%d", uid, gid, o.UID, o.GID)
			}
			if err := o.Mkdir(dir); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second Mkdir = %v, want ErrExist", err)
			}
		})
	}
}

func TestOwnerMkdirChown(t *testing.T) {
	testenv.NeedRoot(t)
	dir := filepath.Join(t.TempDir(), "d")
	o := host.Owner{Mode: 0o770 | fs.ModeSticky, UID: 1234, GID: 5678}
	if err := o.Mkdir(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid, gid := ids(t, dir); uid != 1234 || gid != 5678 || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != o.Mode {
		t.Errorf("dir = %v %d:%d, want %v 1234:5678", fi.Mode(), uid, gid, o.Mode)
	}
}

func ids(t *testing.T, p string) (uid, gid int) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}
