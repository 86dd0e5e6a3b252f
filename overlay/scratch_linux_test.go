package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/journal"
)

// hostUndoer undoes mounts on the host, but those that spares keeps, as
// the shim's release does; scratch takes no locks.
type hostUndoer struct {
	host.Linux
	spares Spares
}

func (u hostUndoer) Unmount(path string) error {
	if u.spares.Put(path) {
		return nil
	}
	return u.Linux.Unmount(path)
}

func (hostUndoer) Unlock(path string) error { return fmt.Errorf("unexpected unlock %s", path) }
func (hostUndoer) Sync(path string) error   { return fmt.Errorf("unexpected sync %s", path) }

// The overlay on the host is made of the directories OpenLower checked,
// even when a link is planted on the way to them in between, and the
// journal undoes all of it.
func TestScratchSetupMountsTheCheckedLower(t *testing.T) {
	testenv.NeedRoot(t)
	tests := []struct {
		name    string
		scratch Scratch
		layers  int // more layers below the image's two, each with a file
	}{
		{"memory", Scratch{Path: "/var/tmp", Size: 8 << 20}, 0},
		{"disk", Scratch{Path: "/var/tmp", Disk: true, Size: 16 << 20}, 0},
		// Past the size at which containerd's mount shortens lowerdir
		// paths by changing directory; 200 still fit one page.
		{"many layers", Scratch{Path: "/var/tmp", Size: 8 << 20}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := newImage(t)
			tree(t, im.top, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o777 | fs.ModeSticky, "var/tmp/image-file": 0o644})
			tree(t, im.bottom, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o700, "var/tmp/bottom-file": 0o644})
			tree(t, im.host, map[string]fs.FileMode{"var/tmp/canary": 0o644})
			rootfs := im.overlay()
			for i := range tt.layers {
				layer := filepath.Join(t.TempDir(), strconv.Itoa(i))
				tree(t, layer, map[string]fs.FileMode{"var/": 0o755, "var/tmp/": 0o755, "var/tmp/f" + strconv.Itoa(i): 0o644})
				rootfs[0].Options[len(rootfs[0].Options)-1] += ":" + layer
			}
			l, err := openLower(t, rootfs, "", tt.scratch.Path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(im.top, "var"), filepath.Join(im.top, "old")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(im.host, "var"), filepath.Join(im.top, "var")); err != nil {
				t.Fatal(err)
			}

			tmp := t.TempDir()
			t.Cleanup(func() { unmountAll(t, tmp) })
			j, err := journal.Create(filepath.Join(tmp, "journal"))
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(tmp, "0")
			m, err := tt.scratch.Setup(host.Linux{}, j, dir, l)
			if err != nil {
				j.Close()
				t.Fatal(err)
			}
			merged := filepath.Join(tt.scratch.Root(dir), "merged")
			if m.Type != "bind" || m.Source != merged || m.Destination != tt.scratch.Path {
				t.Errorf("Setup = %+v, want a bind of %s at %s", m, merged, tt.scratch.Path)
			}
			want := []string{"image-file", "bottom-file"}
			for i := range tt.layers {
				want = append(want, "f"+strconv.Itoa(i))
			}
			for _, name := range want {
				if _, err := os.Lstat(filepath.Join(merged, name)); err != nil {
					t.Errorf("the scratch lacks the image's %s: %v", name, err)
				}
			}
			if _, err := os.Lstat(filepath.Join(merged, "canary")); err == nil {
				t.Errorf("the scratch shows the host's directory that a link planted after the check names")
			}
			if fi, err := os.Stat(merged); err != nil || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != 0o777|fs.ModeSticky {
				t.Errorf("scratch root = %v, %v; want the image's mode drwxrwxrwt", fi, err)
			}
			if err := os.WriteFile(filepath.Join(merged, "new"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(tt.scratch.Root(dir), "upper", "new")); err != nil {
				t.Errorf("a write to the scratch is not in its upper: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(im.top, "old", "tmp", "new")); err == nil {
				t.Errorf("a write to the scratch reached the image layer")
			}

			if err := j.Release(hostUndoer{}); err != nil {
				t.Fatalf("undo: %v", err)
			}
			if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(tmp)); len(ms) > 0 {
				t.Errorf("left mounted after undo: %s", ms[0].Mountpoint)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s left after undo: %v", dir, err)
			}
		})
	}
}

// unmountAll unmounts, deepest first, what a failed test left under dir.
func unmountAll(t testing.TB, dir string) {
	if err := mount.UnmountRecursive(dir, 0); err != nil {
		t.Error(err)
	}
}

// BenchmarkScratch times a scratch's host work at create (OpenLower, Setup,
// and the mount runc makes of the spec mount) and at delete (the undo, and
// the spec mount's unmount, as when the container's namespace goes), over
// an image whose /tmp has a file and one whose /run is empty.
func BenchmarkScratch(b *testing.B) {
	testenv.NeedRoot(b)
	root := b.TempDir()
	tree(b, root, map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky, "tmp/from-image": 0o644, "run/": 0o755})
	rootfs := []mount.Mount{{Type: "bind", Source: root}}
	for _, bc := range []struct {
		name string
		s    Scratch
	}{
		{"memory over content", Scratch{Path: "/tmp", Size: 64 << 20}},
		{"memory empty", Scratch{Path: "/run", Size: 64 << 20}},
		{"disk over content", Scratch{Path: "/tmp", Disk: true, Size: 64 << 20}},
		{"disk empty", Scratch{Path: "/run", Disk: true, Size: 64 << 20}},
		{"disk over content from a spare", Scratch{Path: "/tmp", Disk: true, Size: 64 << 20}},
		{"disk empty from a spare", Scratch{Path: "/run", Disk: true, Size: 64 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tmp := b.TempDir()
			b.Cleanup(func() { unmountAll(b, tmp) })
			h := host.Linux{Templates: filepath.Join(tmp, "templates")}
			if strings.HasSuffix(bc.name, "from a spare") {
				bc.s.Spares = Spares{Dir: filepath.Join(tmp, "spare"), Mounter: h}
				// As the shim's release does before it: reserved.
				bc.s.ReserveLater = false
			}
			target := filepath.Join(tmp, "container")
			mkdirAll(b, target)
			var create, remove time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				j, err := journal.Create(filepath.Join(tmp, "journal"))
				if err != nil {
					b.Fatal(err)
				}
				l, err := OpenLower(rootfs, "", bc.s.Path)
				if err != nil {
					b.Fatal(err)
				}
				m, err := bc.s.Setup(h, j, filepath.Join(tmp, strconv.Itoa(i)), l)
				l.Close()
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Mount(mount.Mount{Type: m.Type, Source: m.Source, Options: m.Options}, target); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := h.Unmount(target); err != nil {
					b.Fatal(err)
				}
				if err := j.Release(hostUndoer{h, bc.s.Spares}); err != nil {
					b.Fatal(err)
				}
				create, remove = create+mid.Sub(start), remove+time.Since(mid)
			}
			b.ReportMetric(float64(create.Microseconds())/float64(b.N), "µs-create/op")
			b.ReportMetric(float64(remove.Microseconds())/float64(b.N), "µs-delete/op")
		})
	}
}
