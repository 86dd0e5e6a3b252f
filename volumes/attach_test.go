//go:build linux

package volumes

import (
	"errors"
	"github.com/containerd-persist/containerd-persist/host"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/journal"
)

// attachUndoer undoes an attach's journal with the fake mounter and the
// store's locks, and records the order.
type attachUndoer struct {
	m      *hosttest.Mounter
	locks  *Locks
	holder Holder // the container being undone
	calls  []string
}

func (u *attachUndoer) Unmount(p string) error {
	u.calls = append(u.calls, "unmount "+p)
	return u.m.Unmount(p)
}

func (u *attachUndoer) Unlock(p string) error {
	u.calls = append(u.calls, "unlock "+p)
	return u.locks.Release(p, u.holder)
}

func (u *attachUndoer) Sync(p string) error {
	u.calls = append(u.calls, "sync "+p)
	return nil
}

// attachEnv is a state dir, dir and loopfile backends, a store on a fake
// mounter, and an open journal the fake reads at each call.
type attachEnv struct {
	state   string
	dir     Backend
	loop    Backend
	m       *hosttest.Mounter
	locks   *Locks
	store   *Store
	jpath   string
	journal *journal.Journal
}

func newAttachEnv(t *testing.T) *attachEnv {
	t.Helper()
	tmp := t.TempDir()
	e := &attachEnv{
		state: filepath.Join(tmp, "state"),
		dir:   Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "vols")},
		loop:  Backend{Name: "sized", Type: Loopfile, Path: filepath.Join(tmp, "loop")},
		jpath: filepath.Join(tmp, "journal"),
		locks: NewLocks(),
	}
	for _, d := range []string{e.dir.Path, e.loop.Path} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.m = &hosttest.Mounter{Journal: e.jpath}
	e.store = Open(stateRoots(e.state), e.m, e.locks)
	e.newJournal(t)
	return e
}

// newJournal starts the journal of the next container.
func (e *attachEnv) newJournal(t *testing.T) {
	t.Helper()
	j, err := journal.Create(e.jpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	e.journal = j
}

func (e *attachEnv) steps(t *testing.T) []journal.Step {
	t.Helper()
	steps, err := journal.Read(e.jpath)
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// release ends the container: its journal is closed and replayed.
func (e *attachEnv) release(t *testing.T) *attachUndoer {
	t.Helper()
	e.journal.Close()
	u := &attachUndoer{m: e.m, locks: e.locks, holder: holderA}
	if err := journal.Replay(e.jpath, u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *attachEnv) options(b Backend, name string) AttachOptions {
	return AttachOptions{ID: vid("ns", name), Backend: b, Size: 1 << 20, Class: "db", Holder: holderA}
}

func TestAttachDir(t *testing.T) {
	e := newAttachEnv(t)
	a, err := e.store.Attach(e.journal, e.options(e.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	lock := e.dir.LockPath(vid("ns", "data"))
	if lock != filepath.Join(e.dir.Path, ".locks", "ns", "data") {
		t.Errorf("LockPath = %s", lock)
	}
	dir := e.dir.Dir(vid("ns", "data"))
	if a.Dir != dir || a.Root != filepath.Join(dir, "fs") {
		t.Errorf("attached at %s, root %s; want %s, %s/fs", a.Dir, a.Root, dir, dir)
	}
	want := []journal.Step{{Kind: journal.Lock, Path: lock}, {Kind: journal.Sync, Path: a.Root, Lock: lock}}
	if got := e.steps(t); !reflect.DeepEqual(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	if len(e.m.Calls) != 0 {
		t.Errorf("a dir volume made host calls: %q", e.m.Ops())
	}
	if h, ok := ReadHolder(lock); !ok || !sameHolder(h, holderA) {
		t.Errorf("lock holder = %+v, %v; want %+v", h, ok, holderA)
	}
	m, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.LastHolder != holderA.Container || m.LastAttached.IsZero() || m.Class != "db" || !reflect.DeepEqual(m, a.Meta) {
		t.Errorf("meta on disk = %+v, attached = %+v", m, a.Meta)
	}

	u := e.release(t)
	if want := []string{"sync " + a.Root, "unlock " + lock}; !reflect.DeepEqual(u.calls, want) {
		t.Errorf("undo = %q, want %q", u.calls, want)
	}
	if _, err := os.Stat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock left after release: %v", err)
	}
	if _, err := ReadMeta(dir); err != nil {
		t.Errorf("volume gone after release: %v", err)
	}

	// Re-attached by the next container: the same volume.
	e.newJournal(t)
	b, err := e.store.Attach(e.journal, e.options(e.dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Meta.Created.Equal(m.Created) {
		t.Errorf("re-attach made a new volume: %+v", b.Meta)
	}
}

func TestAttachLoopfile(t *testing.T) {
	e := newAttachEnv(t)
	a, err := e.store.Attach(e.journal, e.options(e.loop, "data"))
	if err != nil {
		t.Fatal(err)
	}
	lock := e.loop.LockPath(vid("ns", "data"))
	mnt := e.store.MountPath(vid("ns", "data"))
	if mnt != filepath.Join(e.state, "mounts", "ns", "data") {
		t.Errorf("MountPath = %s", mnt)
	}
	dir := e.loop.Dir(vid("ns", "data"))
	if a.Dir != dir || a.Root != mnt {
		t.Errorf("attached at %s, root %s; want %s, %s", a.Dir, a.Root, dir, mnt)
	}
	lockStep := journal.Step{Kind: journal.Lock, Path: lock}
	dirStep := journal.Step{Kind: journal.Dir, Path: mnt}
	mountStep := journal.Step{Kind: journal.Mount, Path: mnt, Lock: lock}
	syncStep := journal.Step{Kind: journal.Sync, Path: mnt, Lock: lock}
	if got, want := e.steps(t), []journal.Step{lockStep, dirStep, mountStep, syncStep}; !reflect.DeepEqual(got, want) {
		t.Errorf("journal = %v, want %v", got, want)
	}
	if len(e.m.Calls) != 2 {
		t.Fatalf("host calls = %q, want makeimage and mount", e.m.Ops())
	}
	// The lock comes before anything else; every step before its action.
	mk, mo := e.m.Calls[0], e.m.Calls[1]
	if mk.Op != "makeimage" || !reflect.DeepEqual(mk.Steps, []journal.Step{lockStep}) {
		t.Errorf("first call %s %s with journal %v, want makeimage after the lock only", mk.Op, mk.Target, mk.Steps)
	}
	wantMount := mount.Mount{Type: "ext4", Source: filepath.Join(dir, "disk.img"), Options: []string{"loop"}}
	if mo.Op != "mount" || mo.Target != mnt || !reflect.DeepEqual(mo.Mount, wantMount) {
		t.Errorf("second call = %+v, want mount of %+v at %s", mo, wantMount, mnt)
	}
	if want := []journal.Step{lockStep, dirStep, mountStep}; !reflect.DeepEqual(mo.Steps, want) {
		t.Errorf("journal at mount = %v, want %v", mo.Steps, want)
	}
	if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
		t.Errorf("mountpoint = %v, %v", fi, err)
	}

	// Undo: sync, unmount, remove the mountpoint, release the lock.
	e.m.Calls = nil
	u := e.release(t)
	if want := []string{"sync " + mnt, "unmount " + mnt, "unlock " + lock}; !reflect.DeepEqual(u.calls, want) {
		t.Errorf("undo = %q, want %q", u.calls, want)
	}
	for _, p := range []string{mnt, lock} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left after release: %v", p, err)
		}
	}

	// Re-attach: no new image, only the mount.
	e.newJournal(t)
	e.m.Calls = nil
	if _, err := e.store.Attach(e.journal, e.options(e.loop, "data")); err != nil {
		t.Fatal(err)
	}
	if got := e.m.Ops(); !reflect.DeepEqual(got, []string{"mount " + mnt}) {
		t.Errorf("re-attach calls = %q, want the mount only", got)
	}
}

func TestAttachMountFails(t *testing.T) {
	e := newAttachEnv(t)
	e.m.FailAt = 2 // makeimage, then mount
	if _, err := e.store.Attach(e.journal, e.options(e.loop, "data")); !errors.Is(err, hosttest.ErrInjected) {
		t.Fatalf("Attach = %v, want the injected failure", err)
	}
	u := e.release(t)
	mnt, lock := e.store.MountPath(vid("ns", "data")), e.loop.LockPath(vid("ns", "data"))
	if want := []string{"unmount " + mnt, "unlock " + lock}; !reflect.DeepEqual(u.calls, want) {
		t.Errorf("undo = %q, want %q", u.calls, want)
	}
	for _, p := range []string{mnt, lock} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	// The volume itself was made whole and stays for the next try.
	if _, err := ReadMeta(e.loop.Dir(vid("ns", "data"))); err != nil {
		t.Error(err)
	}
}

func TestAttachHeld(t *testing.T) {
	e := newAttachEnv(t)
	lock := e.dir.LockPath(vid("ns", "data"))
	other := NewLocks() // another shim
	if err := other.Acquire(lock, holderB, false); err != nil {
		t.Fatal(err)
	}
	_, err := e.store.Attach(e.journal, e.options(e.dir, "data"))
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Attach of a held volume = %v, want FailedPrecondition", err)
	}
	for _, s := range []string{"attach volume data", "container web-2", "namespace ns"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if got := e.steps(t); !reflect.DeepEqual(got, []journal.Step{{Kind: journal.Lock, Path: lock}}) {
		t.Errorf("journal = %v, want the lock only", got)
	}
	if _, err := os.Lstat(e.dir.Dir(vid("ns", "data"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("volume made without its lock: %v", err)
	}
	// Undoing the failed attach must not take the holder's lock away.
	e.release(t)
	if h, ok := ReadHolder(lock); !ok || !sameHolder(h, holderB) {
		t.Errorf("holder after undo = %+v, %v; want %+v", h, ok, holderB)
	}
}

func TestAttachShared(t *testing.T) {
	e := newAttachEnv(t)
	o := e.options(e.dir, "cache")
	o.Shared = true
	a, err := e.store.Attach(e.journal, o)
	if err != nil {
		t.Fatal(err)
	}
	// A second shim attaches it too.
	tmp := t.TempDir()
	j2, err := journal.Create(filepath.Join(tmp, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	o.Holder = holderB
	b, err := Open(stateRoots(e.state), e.m, NewLocks()).Attach(j2, o)
	if err != nil {
		t.Fatalf("second shared Attach = %v", err)
	}
	if a.Root != b.Root {
		t.Errorf("roots %s and %s differ", a.Root, b.Root)
	}
	// A shared volume has no single holder to write down.
	if m, _ := ReadMeta(a.Dir); m.LastHolder != "" {
		t.Errorf("shared volume records holder %q", m.LastHolder)
	}
	o.Shared = false
	if _, err := Open(stateRoots(e.state), e.m, NewLocks()).Attach(j2, o); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("exclusive Attach of a shared-held volume = %v, want FailedPrecondition", err)
	}
}

func TestAttachImage(t *testing.T) {
	v1 := Image{Name: "app:1", ChainID: "sha256:one"}
	v2 := Image{Name: "app:2", ChainID: "sha256:two"}
	e := newAttachEnv(t)
	attach := func(img Image, refuse bool) (*Attached, error) {
		t.Helper()
		e.newJournal(t)
		o := e.options(e.dir, "root")
		o.Image, o.RefuseImageChange = &img, refuse
		a, err := e.store.Attach(e.journal, o)
		e.release(t)
		return a, err
	}
	dir := e.dir.Dir(vid("ns", "root"))
	e.journal.Close()
	os.Remove(e.jpath)

	if _, err := attach(v1, true); err != nil {
		t.Fatal(err)
	}
	if m, _ := ReadMeta(dir); m.Image == nil || *m.Image != v1 || len(m.ImageChanges) != 0 {
		t.Errorf("after the first attach: image %v, changes %v", m.Image, m.ImageChanges)
	}
	if _, err := attach(v1, true); err != nil {
		t.Fatalf("same image under refuse: %v", err)
	}
	_, err := attach(v2, true)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), v1.String()) || !strings.Contains(err.Error(), v2.String()) {
		t.Fatalf("new image under refuse = %v, want FailedPrecondition naming both images", err)
	}
	if m, _ := ReadMeta(dir); *m.Image != v1 || len(m.ImageChanges) != 0 {
		t.Errorf("refused change written: image %v, changes %v", m.Image, m.ImageChanges)
	}
	if _, err := os.Stat(e.dir.LockPath(vid("ns", "root"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock left after a refused attach was undone: %v", err)
	}
	if _, err := attach(v2, false); err != nil {
		t.Fatal(err)
	}
	m, _ := ReadMeta(dir)
	if *m.Image != v2 || len(m.ImageChanges) != 1 || m.ImageChanges[0].From != v1 || m.ImageChanges[0].To != v2 {
		t.Errorf("kept change: image %v, changes %+v", m.Image, m.ImageChanges)
	}
}

// TestAttachBadName: a bad name never becomes an ID, so nothing can attach
// it; the zero ID is refused before anything is journaled.
func TestAttachBadName(t *testing.T) {
	e := newAttachEnv(t)
	if _, err := NewID("ns", "", "../x"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("NewID = %v, want InvalidArgument", err)
	}
	o := e.options(e.dir, "x")
	o.ID = ID{}
	if _, err := e.store.Attach(e.journal, o); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Attach of the zero ID = %v, want InvalidArgument", err)
	}
	if got := e.steps(t); len(got) != 0 {
		t.Errorf("journal = %v, want nothing", got)
	}
}

func TestSubdir(t *testing.T) {
	e := newAttachEnv(t)
	a, err := e.store.Attach(e.journal, e.options(e.dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	owner := host.Owner{Mode: 0o750, UID: os.Getuid(), GID: os.Getgid()}

	p, err := a.Subdir("upper", owner)
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(a.Root, "upper") {
		t.Errorf("Subdir = %s", p)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode().Perm() != 0o750 || !fi.IsDir() {
		t.Errorf("new subdir = %v, %v; want a directory 0750", fi, err)
	}
	// An existing one is kept as the container left it.
	if err := os.Chmod(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subdir("upper", owner); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(p); fi.Mode().Perm() != 0o700 {
		t.Errorf("existing subdir mode changed to %v", fi.Mode().Perm())
	}

	// A container planted a symlink where the host looks.
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(a.Root, "work")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subdir("work", owner); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Subdir over a symlink = %v, want refused", err)
	}
	if fi, _ := os.Stat(outside); fi.Mode().Perm() != 0o711 {
		t.Errorf("symlink target changed to %v", fi.Mode().Perm())
	}
	if err := os.WriteFile(filepath.Join(a.Root, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subdir("file", owner); err == nil {
		t.Error("Subdir over a file succeeded")
	}
}

// TestAttachHeldBySibling covers a shim serving a pod: a container that asks
// for a volume its sibling holds fails, and undoing that leaves the
// sibling's hold alone.
func TestAttachHeldBySibling(t *testing.T) {
	e := newAttachEnv(t)
	if _, err := e.store.Attach(e.journal, e.options(e.dir, "data")); err != nil {
		t.Fatal(err)
	}
	lock := e.dir.LockPath(vid("ns", "data"))
	j2path := filepath.Join(t.TempDir(), "journal")
	j2, err := journal.Create(j2path)
	if err != nil {
		t.Fatal(err)
	}
	o := e.options(e.dir, "data")
	o.Holder = holderB
	if _, err := e.store.Attach(j2, o); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("sibling Attach = %v, want FailedPrecondition", err)
	}
	j2.Close()
	if err := journal.Replay(j2path, &attachUndoer{m: e.m, locks: e.locks, holder: holderB}); err != nil {
		t.Fatal(err)
	}
	if h, ok := ReadHolder(lock); !ok || !sameHolder(h, holderA) {
		t.Errorf("holder after the sibling's cleanup = %+v, %v; want %+v", h, ok, holderA)
	}
	j3, err := journal.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j3.Close()
	if _, err := Open(stateRoots(e.state), e.m, NewLocks()).Attach(j3, o); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("another shim's Attach = %v, want FailedPrecondition: web-1 holds the volume", err)
	}
}

// TestLockLivesWithTheVolume: two stores of different state dirs (two
// configs, or persistctl with another --config) share a backend; the
// second sees the first's hold, and cannot remove the volume under it.
func TestLockLivesWithTheVolume(t *testing.T) {
	e := newAttachEnv(t)
	if _, err := e.store.Attach(e.journal, e.options(e.dir, "data")); err != nil {
		t.Fatal(err)
	}
	other := Open(stateRoots(filepath.Join(t.TempDir(), "other-state")), e.m, NewLocks())
	j, err := journal.Create(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	o := e.options(e.dir, "data")
	o.Holder = holderB
	if _, err := other.Attach(j, o); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), holderA.Container) {
		t.Errorf("attach from another state dir = %v, want ErrHeld naming %s", err, holderA.Container)
	}
	if err := other.Remove(e.dir, vid("ns", "data"), holderB); !errors.Is(err, ErrHeld) {
		t.Errorf("remove from another state dir = %v, want ErrHeld", err)
	}
	if _, err := ReadMeta(e.dir.Dir(vid("ns", "data"))); err != nil {
		t.Errorf("the held volume is gone: %v", err)
	}
}

// TestBackendOthersMayWriteRefused: a backend that others may write could
// hold a planted volume whose content is a link to a host directory.
func TestBackendOthersMayWriteRefused(t *testing.T) {
	e := newAttachEnv(t)
	if err := os.Chmod(e.dir.Path, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Attach(e.journal, e.options(e.dir, "data")); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("attach in a mode 0777 backend = %v, want FailedPrecondition saying who may write it", err)
	}
	if _, err := e.store.List([]Backend{e.dir}, ""); err == nil {
		t.Error("List read a mode 0777 backend")
	}
	if got := e.steps(t); len(got) != 0 {
		t.Errorf("journal = %v, want nothing", got)
	}
}

// An attach of an existing volume only makes none: a missing volume is
// ErrNotFound.
func TestAttachExistingOnly(t *testing.T) {
	e := newAttachEnv(t)
	o := e.options(e.dir, "missing")
	o.Existing = true
	if _, err := e.store.Attach(e.journal, o); !errdefs.IsNotFound(err) {
		t.Fatalf("Attach of a missing volume, existing only = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(e.dir.Dir(vid("ns", "missing"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a volume was made: %v", err)
	}
	if _, err := e.store.Attach(e.journal, e.options(e.dir, "there")); err != nil {
		t.Fatal(err)
	}
	e.release(t)
	e.newJournal(t)
	o = e.options(e.dir, "there")
	o.Existing = true
	if _, err := e.store.Attach(e.journal, o); err != nil {
		t.Errorf("Attach of an existing volume, existing only = %v", err)
	}
}
