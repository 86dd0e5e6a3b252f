package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
)

var errInjected = errors.New("injected failure")

// fakeCall is one call to a fakeMounter, with the journal as it was on disk
// when the call was made.
type fakeCall struct {
	op        string // mount, unmount, makeimage
	target    string // the mountpoint or image path
	mount     mount.Mount
	size      uint64
	journaled bool
	steps     []journal.Step
}

// fakeMounter records calls instead of mounting. failAt makes the Nth Mount
// or MakeImage call fail (1-based; 0 never). A "mounted" target stays a
// plain directory; what setup makes in it stands in for the mounted
// filesystem's content and goes away at Unmount, as it would.
type fakeMounter struct {
	journal string // read at each call, if set
	failAt  int
	n       int
	calls   []fakeCall
	mounted map[string]bool
}

func (f *fakeMounter) record(c fakeCall) error {
	if f.journal != "" {
		steps, err := journal.Read(f.journal)
		if err != nil {
			return fmt.Errorf("fake: read journal: %w", err)
		}
		c.steps = steps
	}
	f.calls = append(f.calls, c)
	if c.op == "unmount" {
		return nil
	}
	f.n++
	if f.n == f.failAt {
		return fmt.Errorf("%s %s: %w", c.op, c.target, errInjected)
	}
	return nil
}

func (f *fakeMounter) Mount(m mount.Mount, target string) error {
	if err := f.record(fakeCall{op: "mount", target: target, mount: m}); err != nil {
		return err
	}
	if f.mounted == nil {
		f.mounted = map[string]bool{}
	}
	f.mounted[target] = true
	return nil
}

func (f *fakeMounter) Unmount(target string) error {
	if err := f.record(fakeCall{op: "unmount", target: target}); err != nil {
		return err
	}
	if !f.mounted[target] {
		return nil // not mounted: success, like host.Linux
	}
	delete(f.mounted, target)
	entries, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeMounter) MakeImage(path string, size uint64, o host.ImageOptions) error {
	if err := f.record(fakeCall{op: "makeimage", target: path, size: size, journaled: o.Journaled}); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}

func (f *fakeMounter) ops(op string) []string {
	var targets []string
	for _, c := range f.calls {
		if c.op == op {
			targets = append(targets, c.target)
		}
	}
	return targets
}

// fakeUndoer undoes mounts with the fake; scratch takes no locks.
type fakeUndoer struct{ m *fakeMounter }

func (u fakeUndoer) Unmount(path string) error { return u.m.Unmount(path) }
func (u fakeUndoer) Unlock(path string) error  { return fmt.Errorf("unexpected unlock %s", path) }
func (u fakeUndoer) Sync(path string) error    { return fmt.Errorf("unexpected sync %s", path) }

// ownOwner is an owner that a test not running as root may chown to.
func ownOwner(mode fs.FileMode) Owner {
	return Owner{Mode: mode, UID: os.Getuid(), GID: os.Getgid()}
}

// lowerAt opens the lower of a scratch at path in a one-layer image whose
// directory there has mode 01777 and, with content, a file.
func lowerAt(t *testing.T, path string, content bool) *Lower {
	t.Helper()
	root := t.TempDir()
	entries := map[string]fs.FileMode{path[1:] + "/": 0o777 | fs.ModeSticky}
	if content {
		entries[path[1:]+"/from-image"] = 0o644
	}
	tree(t, root, entries)
	l, err := openLower(t, nil, root, path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestScratchSetup(t *testing.T) {
	tests := []struct {
		name      string
		scratch   Scratch
		content   bool
		wantCalls func(dir string, l *Lower) []fakeCall // with the journal as it was at each
		want      func(dir string, l *Lower) specs.Mount
	}{
		{
			name:    "memory over the image",
			scratch: Scratch{Path: "/tmp", Size: 64 << 20},
			content: true,
			wantCalls: func(dir string, l *Lower) []fakeCall {
				merged := filepath.Join(dir, "merged")
				return []fakeCall{{
					op: "mount", target: dir,
					mount: mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=67108864", "nr_inodes=16384", "mode=0700", "nodev", "nosuid"}},
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.Mount, Path: dir}},
				}, {
					op: "mount", target: merged, mount: overlayOf(dir, l),
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.Mount, Path: dir}, {Kind: journal.Mount, Path: merged}},
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/tmp", filepath.Join(dir, "merged")) },
		},
		{
			name:    "disk over the image",
			scratch: Scratch{Path: "/var/tmp", Disk: true, Size: 1 << 30},
			content: true,
			wantCalls: func(dir string, l *Lower) []fakeCall {
				img, merged := dir+".img", filepath.Join(dir, "merged")
				return []fakeCall{{
					op: "makeimage", target: img, size: 1 << 30, journaled: false,
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: img}},
				}, {
					op: "mount", target: dir,
					mount: mount.Mount{Type: "ext4", Source: img, Options: []string{"loop", "nodev", "nosuid", "noatime"}},
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: img}, {Kind: journal.Mount, Path: dir}},
				}, {
					op: "mount", target: merged, mount: overlayOf(dir, l),
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: img}, {Kind: journal.Mount, Path: dir}, {Kind: journal.Mount, Path: merged}},
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/var/tmp", filepath.Join(dir, "merged")) },
		},
		{
			name:      "memory with nothing to lay over",
			scratch:   Scratch{Path: "/tmp", Size: 1 << 20},
			wantCalls: func(string, *Lower) []fakeCall { return nil },
			want: func(string, *Lower) specs.Mount {
				uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
				return specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{
					"size=1048576", "nr_inodes=1024", "mode=1777", "uid=" + uid, "gid=" + gid, "nodev", "nosuid",
				}}
			},
		},
		{
			name:    "disk with nothing to lay over",
			scratch: Scratch{Path: "/var/tmp", Disk: true, Size: 1 << 30},
			wantCalls: func(dir string, _ *Lower) []fakeCall {
				img := dir + ".img"
				return []fakeCall{{
					op: "makeimage", target: img, size: 1 << 30, journaled: false,
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: img}},
				}, {
					op: "mount", target: dir,
					mount: mount.Mount{Type: "ext4", Source: img, Options: []string{"loop", "nodev", "nosuid", "noatime"}},
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: img}, {Kind: journal.Mount, Path: dir}},
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/var/tmp", filepath.Join(dir, "upper")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			jpath := filepath.Join(tmp, "journal")
			j, err := journal.Create(jpath)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			f := &fakeMounter{journal: jpath}
			dir := filepath.Join(tmp, "0")
			l := lowerAt(t, tt.scratch.Path, tt.content)

			got, err := tt.scratch.Setup(f, j, dir, l)
			if err != nil {
				t.Fatal(err)
			}

			// Every action was journaled before it was taken.
			if want := tt.wantCalls(dir, l); !reflect.DeepEqual(f.calls, want) {
				t.Errorf("calls:\n got %+v\nwant %+v", f.calls, want)
			}
			if want := tt.want(dir, l); !reflect.DeepEqual(got, want) {
				t.Errorf("Setup =\n %+v\nwant\n %+v", got, want)
			}
			if len(f.calls) == 0 {
				if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s made for a scratch that needs nothing on the host: %v", dir, err)
				}
				return
			}
			fi, err := os.Lstat(filepath.Join(dir, "upper"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != l.Owner.Mode {
				t.Errorf("upper mode = %v, want a directory with %v", fi.Mode(), l.Owner.Mode)
			}
			if tt.content {
				for _, d := range []string{"work", "merged"} {
					if fi, err := os.Lstat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
						t.Errorf("%s = %v, %v; want a directory", d, fi, err)
					}
				}
			}
		})
	}
}

// overlayOf is the overlay that Setup mounts at dir/merged over l.
func overlayOf(dir string, l *Lower) mount.Mount {
	opts := []string{l.lowerdir(), "upperdir=" + filepath.Join(dir, "upper"), "workdir=" + filepath.Join(dir, "work")}
	opts = append(append(opts, l.Options...), "nodev", "nosuid")
	return mount.Mount{Type: "overlay", Source: "overlay", Options: opts}
}

func bindOf(dest, src string) specs.Mount {
	return specs.Mount{Destination: dest, Type: "bind", Source: src, Options: []string{"rbind", "rw", "nosuid", "nodev"}}
}

// TestScratchSetupUndo fails a container's setup of two scratch areas at
// each host call in turn and checks that replaying its journal leaves
// nothing behind.
func TestScratchSetupUndo(t *testing.T) {
	scratches := []Scratch{
		{Path: "/tmp", Size: 1 << 20},
		{Path: "/var/tmp", Disk: true, Size: 1 << 20},
	}
	// Host calls: mount 0, mount 0/merged, makeimage 1.img, mount 1,
	// mount 1/merged.
	for failAt := 0; failAt <= 5; failAt++ {
		t.Run(fmt.Sprintf("fail at call %d", failAt), func(t *testing.T) {
			tmp := t.TempDir()
			jpath := filepath.Join(tmp, "journal")
			base := filepath.Join(tmp, "scratch")
			if err := os.Mkdir(base, 0o700); err != nil {
				t.Fatal(err)
			}
			j, err := journal.Create(jpath)
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeMounter{failAt: failAt}
			var setupErr error
			for i, s := range scratches {
				if _, setupErr = s.Setup(f, j, filepath.Join(base, fmt.Sprint(i)), lowerAt(t, s.Path, true)); setupErr != nil {
					break
				}
			}
			if failAt > 0 && !errors.Is(setupErr, errInjected) {
				t.Fatalf("setup = %v, want the injected failure", setupErr)
			}
			if failAt == 0 && setupErr != nil {
				t.Fatal(setupErr)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			steps, err := journal.Read(jpath)
			if err != nil {
				t.Fatal(err)
			}
			var journaledMounts []string
			for _, s := range steps {
				if s.Kind == journal.Mount {
					journaledMounts = append(journaledMounts, s.Path)
				}
			}
			var mounted []string
			for p := range f.mounted {
				mounted = append(mounted, p)
			}

			f.calls = nil
			if err := journal.Replay(jpath, fakeUndoer{f}); err != nil {
				t.Fatalf("replay: %v", err)
			}

			slices.Reverse(journaledMounts)
			if got := f.ops("unmount"); !reflect.DeepEqual(got, journaledMounts) {
				t.Errorf("unmounts = %q, want %q: every journaled mount, in reverse", got, journaledMounts)
			}
			for _, p := range mounted {
				if f.mounted[p] {
					t.Errorf("%s still mounted", p)
				}
			}
			if _, err := os.Stat(jpath); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("journal left: %v", err)
			}
			left, err := os.ReadDir(base)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range left {
				t.Errorf("left behind: %s", filepath.Join(base, e.Name()))
			}
		})
	}
}

func TestScratchSetupJournalFails(t *testing.T) {
	tmp := t.TempDir()
	j, err := journal.Create(filepath.Join(tmp, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close() // every Record now fails
	f := &fakeMounter{}
	dir := filepath.Join(tmp, "0")
	for _, s := range []Scratch{{Path: "/tmp", Size: 1 << 20}, {Path: "/tmp", Disk: true, Size: 1 << 20}} {
		for _, content := range []bool{true, false} {
			if _, err := s.Setup(f, j, dir, lowerAt(t, s.Path, content)); err == nil && (content || s.Disk) {
				t.Fatalf("Setup of %+v with a broken journal succeeded", s)
			}
		}
	}
	// Nothing may be done that the journal does not hold.
	if len(f.calls) != 0 {
		t.Errorf("host calls without a journal: %+v", f.calls)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s made without a journal: %v", dir, err)
	}
}

// layered opens the lower of /tmp in an image of n layers that each have a
// file there.
func layered(t *testing.T, n int) *Lower {
	t.Helper()
	base := t.TempDir()
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = filepath.Join(base, strconv.Itoa(i))
		tree(t, dirs[i], map[string]fs.FileMode{"tmp/": 0o777 | fs.ModeSticky, "tmp/f" + strconv.Itoa(i): 0o644})
	}
	rootfs := []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + strings.Join(dirs, ":")}}}
	l, err := openLower(t, rootfs, "", "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// An overlay's options are one page: an image with more layers than fit
// fails before anything is made, with a line that says what to do.
func TestScratchSetupLayerLimit(t *testing.T) {
	for _, tt := range []struct {
		layers int
		fits   bool
	}{{1, true}, {150, true}, {300, false}} {
		t.Run(strconv.Itoa(tt.layers), func(t *testing.T) {
			tmp := t.TempDir()
			j, err := journal.Create(filepath.Join(tmp, "journal"))
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			f := &fakeMounter{}
			dir := filepath.Join(tmp, "0")
			_, err = Scratch{Path: "/tmp", Size: 1 << 20}.Setup(f, j, dir, layered(t, tt.layers))
			if tt.fits {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "squash the image's layers") {
				t.Fatalf("Setup = %v, want ErrInvalidArgument saying to squash the image's layers", err)
			}
			if len(f.calls) != 0 || j.Recorded() != 0 {
				t.Errorf("a refused scratch did %+v and journaled %d steps", f.calls, j.Recorded())
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s made for a refused scratch: %v", dir, err)
			}
		})
	}
}
