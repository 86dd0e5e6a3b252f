//go:build linux

package overlay

import (
	"errors"
	"fmt"
	"github.com/containerd-persist/containerd-persist/host"
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

	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/journal"
)

// fakeUndoer undoes mounts with the fake; scratch takes no locks.
type fakeUndoer struct{ m *hosttest.Mounter }

func (u fakeUndoer) Unmount(path string) error { return u.m.Unmount(path) }
func (u fakeUndoer) Unlock(path string) error  { return fmt.Errorf("unexpected unlock %s", path) }
func (u fakeUndoer) Sync(path string) error    { return fmt.Errorf("unexpected sync %s", path) }

// ownOwner is an owner that a test not running as root may chown to.
func ownOwner(mode fs.FileMode) host.Owner {
	return host.Owner{Mode: mode, UID: os.Getuid(), GID: os.Getgid()}
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
		wantCalls func(dir string, l *Lower) []hosttest.Call // with the journal as it was at each
		want      func(dir string, l *Lower) specs.Mount
	}{
		{
			name:    "memory over the image",
			scratch: Scratch{Path: "/tmp", Size: 64 << 20},
			content: true,
			wantCalls: func(dir string, l *Lower) []hosttest.Call {
				merged := filepath.Join(dir, "merged")
				return []hosttest.Call{{
					Op: "mount", Target: dir,
					Mount: mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=67108864", "nr_inodes=16384", "mode=0700", "nodev", "nosuid"}},
					Steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.Mount, Path: dir}},
				}, {
					Op: "mount", Target: merged, Mount: overlayOf(dir, l),
					Steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.Mount, Path: dir}, {Kind: journal.Mount, Path: merged}},
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/tmp", filepath.Join(dir, "merged")) },
		},
		{
			name:    "disk over the image",
			scratch: Scratch{Path: "/var/tmp", Disk: true, Size: 1 << 30},
			content: true,
			wantCalls: func(dir string, l *Lower) []hosttest.Call {
				root := filepath.Join(dir, "fs")
				img, merged := root+".img", filepath.Join(root, "merged")
				own := diskSteps(dir)
				return []hosttest.Call{{
					Op: "makeimage", Target: img, Size: 1 << 30, Steps: own,
				}, {
					Op: "mount", Target: root,
					Mount: mount.Mount{Type: "ext4", Source: img, Options: []string{"loop", "nodev", "nosuid", "noatime"}},
					Steps: own,
				}, {
					Op: "mount", Target: merged, Mount: overlayOf(root, l),
					Steps: append(own, journal.Step{Kind: journal.Mount, Path: merged}),
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/var/tmp", filepath.Join(dir, "fs", "merged")) },
		},
		{
			name:      "memory with nothing to lay over",
			scratch:   Scratch{Path: "/tmp", Size: 1 << 20},
			wantCalls: func(string, *Lower) []hosttest.Call { return nil },
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
			wantCalls: func(dir string, _ *Lower) []hosttest.Call {
				root := filepath.Join(dir, "fs")
				return []hosttest.Call{{
					Op: "makeimage", Target: root + ".img", Size: 1 << 30, Steps: diskSteps(dir),
				}, {
					Op: "mount", Target: root,
					Mount: mount.Mount{Type: "ext4", Source: root + ".img", Options: []string{"loop", "nodev", "nosuid", "noatime"}},
					Steps: diskSteps(dir),
				}}
			},
			want: func(dir string, _ *Lower) specs.Mount { return bindOf("/var/tmp", filepath.Join(dir, "fs", "upper")) },
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
			f := &hosttest.Mounter{Journal: jpath}
			dir := filepath.Join(tmp, "0")
			l := lowerAt(t, tt.scratch.Path, tt.content)

			got, err := tt.scratch.Setup(f, j, dir, l)
			if err != nil {
				t.Fatal(err)
			}

			// Every action was journaled before it was taken.
			if want := tt.wantCalls(dir, l); !reflect.DeepEqual(f.Calls, want) {
				t.Errorf("calls:\n got %+v\nwant %+v", f.Calls, want)
			}
			if want := tt.want(dir, l); !reflect.DeepEqual(got, want) {
				t.Errorf("Setup =\n %+v\nwant\n %+v", got, want)
			}
			if len(f.Calls) == 0 {
				if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s made for a scratch that needs nothing on the host: %v", dir, err)
				}
				return
			}
			fi, err := os.Lstat(filepath.Join(tt.scratch.Root(dir), "upper"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != l.Owner.Mode {
				t.Errorf("upper mode = %v, want a directory with %v", fi.Mode(), l.Owner.Mode)
			}
			if tt.content {
				for _, d := range []string{"work", "merged"} {
					if fi, err := os.Lstat(filepath.Join(tt.scratch.Root(dir), d)); err != nil || !fi.IsDir() {
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
			f := &hosttest.Mounter{FailAt: failAt}
			var setupErr error
			for i, s := range scratches {
				if _, setupErr = s.Setup(f, j, filepath.Join(base, fmt.Sprint(i)), lowerAt(t, s.Path, true)); setupErr != nil {
					break
				}
			}
			if failAt > 0 && !errors.Is(setupErr, hosttest.ErrInjected) {
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
			f.Calls = nil
			if err := journal.Replay(jpath, fakeUndoer{f}); err != nil {
				t.Fatalf("replay: %v", err)
			}

			slices.Reverse(journaledMounts)
			if got := f.Targets("unmount"); !reflect.DeepEqual(got, journaledMounts) {
				t.Errorf("unmounts = %q, want %q: every journaled mount, in reverse", got, journaledMounts)
			}
			if left := f.Mounted(); len(left) > 0 {
				t.Errorf("still mounted: %q", left)
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
	f := &hosttest.Mounter{}
	dir := filepath.Join(tmp, "0")
	for _, s := range []Scratch{{Path: "/tmp", Size: 1 << 20}, {Path: "/tmp", Disk: true, Size: 1 << 20}} {
		for _, content := range []bool{true, false} {
			if _, err := s.Setup(f, j, dir, lowerAt(t, s.Path, content)); err == nil && (content || s.Disk) {
				t.Fatalf("Setup of %+v with a broken journal succeeded", s)
			}
		}
	}
	// Nothing may be done that the journal does not hold.
	if len(f.Calls) != 0 {
		t.Errorf("host calls without a journal: %+v", f.Calls)
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
			f := &hosttest.Mounter{}
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
			if len(f.Calls) != 0 || j.Recorded() != 0 {
				t.Errorf("a refused scratch did %+v and journaled %d steps", f.Calls, j.Recorded())
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s made for a refused scratch: %v", dir, err)
			}
		})
	}
}

// diskSteps are the steps a disk scratch at dir records before it takes a
// spare or makes its filesystem: the same either way.
func diskSteps(dir string) []journal.Step {
	root := filepath.Join(dir, "fs")
	return []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: root + ".img"}, {Kind: journal.Dir, Path: root}, {Kind: journal.Mount, Path: root}}
}
