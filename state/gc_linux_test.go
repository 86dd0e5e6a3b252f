package state

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// gcWorld is a state dir and a backend with leftovers made by hand, and
// the storage of one live container beside them.
type gcWorld struct {
	t       *testing.T
	dir     Dir
	backend volumes.Backend
	// What gc must remove, and what it must leave.
	leftovers []Leftover
	live      []string // paths
	liveMount []string
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	mustT(t, os.MkdirAll(dir, 0o700))
	mustT(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"))
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	mustT(t, os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o600))
}

func newGCWorld(t *testing.T) *gcWorld {
	testenv.NeedRoot(t)
	root := t.TempDir()
	w := &gcWorld{t: t, dir: Dir(filepath.Join(root, "state")), backend: volumes.Backend{Name: "local", Type: volumes.Dir, Path: filepath.Join(root, "volumes")}}
	store := volumes.Open(w.dir.Volumes(), host.Linux{}, volumes.NewLocks())
	add := func(kind, path string) { w.leftovers = append(w.leftovers, Leftover{Kind: kind, Path: path}) }

	// A dead container: its journal, a scratch tmpfs and a volume lock.
	jpath := w.dir.Journal("ns", "dead")
	j, err := journal.Create(jpath)
	mustT(t, err)
	scratch := w.dir.Scratch("ns", "dead")
	lock := w.backend.LockPath(vid("ns", "vol1"))
	for _, s := range []journal.Step{{Kind: journal.Dir, Path: scratch}, {Kind: journal.Dir, Path: scratch + "/0"}, {Kind: journal.Mount, Path: scratch + "/0"}, {Kind: journal.Lock, Path: lock}} {
		mustT(t, j.Record(s))
	}
	mountTmpfs(t, scratch+"/0")
	mustT(t, os.MkdirAll(filepath.Dir(lock), 0o700))
	mustT(t, os.WriteFile(lock, nil, 0o600))
	mustT(t, j.Close())
	add(KindJournal, jpath)

	// A scratch dir whose journal is gone, with a mount and an image on a
	// loop device that nothing mounts.
	orphan := w.dir.Scratch("ns", "orphan")
	mountTmpfs(t, orphan+"/0")
	img := orphan + "/1.img"
	mustT(t, os.WriteFile(img, make([]byte, 1<<20), 0o600))
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	add(KindScratch, orphan)
	add(KindLoop, loop)

	// A released image that a killed shim did not unlink.
	trashed := filepath.Join(w.dir.Trash(), "0123456789abcdef.img")
	mustT(t, os.MkdirAll(w.dir.Trash(), 0o700))
	mustT(t, os.WriteFile(trashed, nil, 0o600))
	add(KindTrash, trashed)

	// A loopfile mount left without its lock.
	gone := store.MountPath(vid("ns", "gone"))
	mountTmpfs(t, gone)
	add(KindMount, gone)

	// A half-made volume, and stale locks.
	half := filepath.Join(w.backend.Path, "ns", ".creating-half-0123456789ab")
	mustT(t, os.MkdirAll(filepath.Join(half, "fs", "deep"), 0o700))
	mustT(t, os.Symlink("/etc", filepath.Join(half, "fs", "etc")))
	add(KindVolume, half)
	stale := w.backend.LockPath(vid("ns", "stale"))
	mustT(t, os.WriteFile(stale, []byte(`{"container":"long-gone"}`), 0o600))
	add(KindLock, stale)
	add(KindLock, lock) // also the dead journal's, until that is undone

	// A live container: its journal is held, as are its volume's lock; its
	// scratch, mount and half-made volume must stay.
	live, err := journal.Create(w.dir.Journal("ns", "live"))
	mustT(t, err)
	t.Cleanup(func() { live.Close() })
	liveScratch := w.dir.Scratch("ns", "live")
	mountTmpfs(t, liveScratch+"/0")
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "ns", Container: "live", Since: time.Now()}
	mustT(t, locks.Acquire(w.backend.LockPath(vid("ns", "held")), h, false))
	t.Cleanup(func() { locks.Release(w.backend.LockPath(vid("ns", "held")), h) })
	heldMount := store.MountPath(vid("ns", "held"))
	mountTmpfs(t, heldMount)
	heldHalf := filepath.Join(w.backend.Path, "ns", ".creating-held-0123456789ab")
	mustT(t, os.MkdirAll(heldHalf, 0o700))
	w.live = []string{w.dir.Journal("ns", "live"), liveScratch, heldMount, heldHalf, w.backend.LockPath(vid("ns", "held"))}
	w.liveMount = []string{liveScratch + "/0", heldMount}
	return w
}

func (w *gcWorld) gc() *GC { return NewGC(w.dir, []volumes.Backend{w.backend}, host.Linux{}) }

func (w *gcWorld) assertLiveUntouched() {
	w.t.Helper()
	for _, p := range w.live {
		if _, err := os.Lstat(p); err != nil {
			w.t.Errorf("gc touched live %s: %v", p, err)
		}
	}
	for _, p := range w.liveMount {
		if ok, _ := mountinfo.Mounted(p); !ok {
			w.t.Errorf("gc unmounted live %s", p)
		}
	}
}

func kindsAndPaths(ls []Leftover) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Kind+" "+l.Path)
	}
	slices.Sort(out)
	return out
}

func TestGCFindsAndRemovesLeftovers(t *testing.T) {
	w := newGCWorld(t)
	g := w.gc()
	found, err := g.Find()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kindsAndPaths(found), kindsAndPaths(w.leftovers); !slices.Equal(got, want) {
		t.Fatalf("Find:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Finding changes nothing.
	for _, l := range w.leftovers {
		if _, err := os.Lstat(l.Path); err != nil {
			t.Errorf("Find removed %s: %v", l.Path, err)
		}
	}
	if ok, _ := mountinfo.Mounted(w.dir.Scratch("ns", "dead") + "/0"); !ok {
		t.Error("Find unmounted the dead container's scratch")
	}

	for _, l := range found {
		if err := g.Remove(l); err != nil {
			t.Errorf("Remove(%s %s): %v", l.Kind, l.Path, err)
		}
	}
	for _, l := range w.leftovers {
		p := l.Path
		if l.Kind == KindLoop { // the device stays; its backing file goes
			p = filepath.Join("/sys/block", filepath.Base(p), "loop", "backing_file")
		}
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s %s is still there: %v", l.Kind, l.Path, err)
		}
	}
	for _, p := range []string{w.dir.Scratch("ns", "dead"), w.dir.Journal("ns", "orphan")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(string(w.dir)))
	for _, m := range ms {
		if !slices.Contains(w.liveMount, m.Mountpoint) {
			t.Errorf("left mounted: %s", m.Mountpoint)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("gc followed a symlink out of a half-made volume: %v", err)
	}
	w.assertLiveUntouched()

	again, err := g.Find()
	if err != nil || len(again) != 0 {
		t.Errorf("a second Find = %v, %v; want nothing", kindsAndPaths(again), err)
	}
}

func TestGCLeavesWhatBecameLive(t *testing.T) {
	w := newGCWorld(t)
	g := w.gc()
	found, err := g.Find()
	if err != nil {
		t.Fatal(err)
	}
	// Between Find and Remove, a container of the orphan's ID starts, and
	// another attaches volume "gone".
	j, err := journal.Create(w.dir.Journal("ns", "orphan"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "ns", Container: "new"}
	lock := w.backend.LockPath(vid("ns", "gone"))
	if err := locks.Acquire(lock, h, false); err != nil {
		t.Fatal(err)
	}
	defer locks.Release(lock, h)
	for _, l := range found {
		err := g.Remove(l)
		switch {
		case l.Kind == KindLoop:
			if !errors.Is(err, ErrLive) {
				t.Errorf("Remove(%s) = %v, want ErrLive: its image is in the live container's scratch", l.Path, err)
			}
		case l.Path == w.dir.Scratch("ns", "orphan") || l.Path == filepath.Join(w.dir.Mounts(), "ns", "gone"):
			if !errors.Is(err, ErrLive) {
				t.Errorf("Remove(%s) = %v, want ErrLive", l.Path, err)
			}
			if _, err := os.Lstat(l.Path); err != nil {
				t.Errorf("%s was removed though it became live", l.Path)
			}
		}
	}
	w.assertLiveUntouched()
}

// vid is the ID of volume name of namespace ns, of no tenant.
func vid(ns, name string) volumes.ID {
	id, err := volumes.NewID(ns, "", name)
	if err != nil {
		panic(err)
	}
	return id
}

// TestGCLockErrorIsNoLiveHolder: only a held lock means a live container.
// A lock gc cannot take for another reason is an error, not "live".
func TestGCLockErrorIsNoLiveHolder(t *testing.T) {
	testenv.NeedRoot(t)
	root := t.TempDir()
	d := Dir(filepath.Join(root, "state"))
	b := volumes.Backend{Name: "sized", Type: volumes.Loopfile, Path: filepath.Join(root, "images")}
	mnt := filepath.Join(d.Mounts(), "ns", "v")
	mountTmpfs(t, mnt)
	// A directory where the volume's lock file should be: it cannot be
	// opened as a lock, and no one holds it.
	mustT(t, os.MkdirAll(filepath.Join(b.LockPath(vid("ns", "v")), "x"), 0o700))
	g := NewGC(d, []volumes.Backend{b}, host.Linux{})
	found, err := g.Find()
	if err != nil {
		t.Fatal(err)
	}
	var mount *Leftover
	for i := range found {
		if found[i].Kind == KindMount {
			mount = &found[i]
		}
	}
	if mount == nil {
		t.Fatalf("Find = %v, want the mount", kindsAndPaths(found))
	}
	err = g.Remove(*mount)
	if err == nil || errors.Is(err, ErrLive) {
		t.Errorf("Remove with a lock that cannot be taken = %v, want an error that is not ErrLive", err)
	}
	if ok, _ := mountinfo.Mounted(mnt); !ok {
		t.Error("gc unmounted the volume without its lock")
	}
}
