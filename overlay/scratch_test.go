package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/runtime-spec/specs-go"

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

func (f *fakeMounter) MakeImage(path string, size uint64, journaled bool) error {
	if err := f.record(fakeCall{op: "makeimage", target: path, size: size, journaled: journaled}); err != nil {
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

func TestScratchSetup(t *testing.T) {
	tests := []struct {
		name      string
		scratch   Scratch
		owner     Owner
		wantSteps func(dir string) []journal.Step // when each call is made
		wantCalls func(dir string) []fakeCall
	}{
		{
			name:    "memory",
			scratch: Scratch{Path: "/tmp", Size: 64 << 20},
			owner:   ownOwner(0o777 | fs.ModeSticky),
			wantCalls: func(dir string) []fakeCall {
				return []fakeCall{{
					op: "mount", target: dir,
					mount: mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=67108864", "mode=0700", "nodev", "nosuid"}},
					steps: []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.Mount, Path: dir}},
				}}
			},
		},
		{
			name:    "disk",
			scratch: Scratch{Path: "/var/tmp", Disk: true, Size: 1 << 30},
			owner:   ownOwner(0o750),
			wantCalls: func(dir string) []fakeCall {
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
			rootfs := "/run/bundle/rootfs"

			got, err := tt.scratch.Setup(f, j, dir, rootfs, tt.owner)
			if err != nil {
				t.Fatal(err)
			}

			// Every action was journaled before it was taken.
			if want := tt.wantCalls(dir); !reflect.DeepEqual(f.calls, want) {
				t.Errorf("calls:\n got %+v\nwant %+v", f.calls, want)
			}
			upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
			want := specs.Mount{
				Destination: tt.scratch.Path,
				Type:        "overlay",
				Source:      "overlay",
				Options: []string{
					"lowerdir=" + rootfs + tt.scratch.Path,
					"upperdir=" + upper,
					"workdir=" + work,
					"nosuid", "nodev",
				},
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Setup =\n %+v\nwant\n %+v", got, want)
			}
			fi, err := os.Lstat(upper)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode()&(fs.ModePerm|fs.ModeSticky) != tt.owner.Mode {
				t.Errorf("upper mode = %v, want a directory with %v", fi.Mode(), tt.owner.Mode)
			}
			if fi, err := os.Lstat(work); err != nil || !fi.IsDir() {
				t.Errorf("work = %v, %v; want a directory", fi, err)
			}
		})
	}
}

// TestScratchSetupUndo fails a container's setup of two scratch areas at
// each host call in turn and checks that replaying its journal leaves
// nothing behind.
func TestScratchSetupUndo(t *testing.T) {
	scratches := []Scratch{
		{Path: "/tmp", Size: 1 << 20},
		{Path: "/var/tmp", Disk: true, Size: 1 << 20},
	}
	// Host calls: mount 0, makeimage 1.img, mount 1.
	for failAt := 0; failAt <= 3; failAt++ {
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
				if _, setupErr = s.Setup(f, j, filepath.Join(base, fmt.Sprint(i)), "/rootfs", ownOwner(0o755)); setupErr != nil {
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
		if _, err := s.Setup(f, j, dir, "/rootfs", ownOwner(0o755)); err == nil {
			t.Fatal("Setup with a broken journal succeeded")
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
