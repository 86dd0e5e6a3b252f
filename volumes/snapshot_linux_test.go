//go:build linux

package volumes

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

func TestValidateSnapshotName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"s1", true}, {"before-upgrade_2.0", true}, {"20261201T221705Z", true}, {strings.Repeat("a", 63), true},
		{"", false}, {".hidden", false}, {"-x", false}, {"a/b", false}, {"..", false}, {strings.Repeat("a", 64), false}, {"sp ace", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateSnapshotName(tc.name)
			if (err == nil) != tc.ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
				t.Errorf("ValidateSnapshotName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

// snapWorld is a state dir and a backend of each type in a temp dir.
type snapWorld struct {
	store    *Store
	dir      Backend
	loopfile Backend
	holder   Holder
}

func newSnapWorld(t *testing.T) *snapWorld {
	testenv.NeedRoot(t)
	tmp := t.TempDir()
	w := &snapWorld{
		store:    Open(snapRoots(filepath.Join(tmp, "state")), host.Linux{}, NewLocks()),
		dir:      Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "dir")},
		loopfile: Backend{Name: "sized", Type: Loopfile, Path: filepath.Join(tmp, "loop")},
		holder:   Holder{Namespace: "ns", Container: "persistctl-test", Since: time.Now()},
	}
	for _, p := range []string{w.dir.Path, w.loopfile.Path} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// write writes files into a detached volume's content, mounting a loopfile
// volume's image for it.
func (w *snapWorld) write(t *testing.T, b Backend, id ID, files map[string]string) {
	t.Helper()
	w.with(t, b, id, func(root string) {
		for name, data := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// read returns the content of the named files of a detached volume; a
// missing file reads as "<none>".
func (w *snapWorld) read(t *testing.T, b Backend, id ID, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	w.with(t, b, id, func(root string) {
		for _, name := range names {
			data, err := os.ReadFile(filepath.Join(root, name))
			if errors.Is(err, os.ErrNotExist) {
				out[name] = "<none>"
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out[name] = string(data)
		}
	})
	return out
}

func (w *snapWorld) with(t *testing.T, b Backend, id ID, fn func(root string)) {
	t.Helper()
	if b.Type == Dir {
		fn(filepath.Join(b.Dir(id), contentFS))
		return
	}
	root, undo, err := w.store.mountDetached(b.Dir(id), id, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := undo(); err != nil {
			t.Fatal(err)
		}
	}()
	fn(root)
}

func sameFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

func TestSnapshotRestoreRemove(t *testing.T) {
	w := newSnapWorld(t)
	for _, b := range []Backend{w.dir, w.loopfile} {
		t.Run(b.Type, func(t *testing.T) {
			id := vid("ns", "db-"+b.Type)
			if err := w.store.Create(b, id, Meta{Size: 16 << 20, Class: "db"}); err != nil {
				t.Fatal(err)
			}
			w.write(t, b, id, map[string]string{"data/a": "one"})
			snap, err := w.store.CreateSnapshot(b, id, "s1", CopyOptions{Holder: w.holder})
			if err != nil {
				t.Fatal(err)
			}
			wantMethod := map[string]string{Dir: MethodTree, Loopfile: MethodCopy}[b.Type]
			if snap.Name != "s1" || snap.Method != wantMethod || snap.Live || snap.Type != b.Type {
				t.Errorf("snapshot = %+v, want s1 made by %s, not live", snap, wantMethod)
			}
			if _, err := w.store.CreateSnapshot(b, id, "s1", CopyOptions{Holder: w.holder}); !errdefs.IsAlreadyExists(err) {
				t.Errorf("second snapshot s1 = %v, want AlreadyExists", err)
			}
			w.write(t, b, id, map[string]string{"data/a": "two", "data/b": "new"})

			info, err := w.store.Inspect(b, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(info.Snapshots) != 1 || info.Snapshots[0].Name != "s1" {
				t.Fatalf("Inspect snapshots = %+v, want s1", info.Snapshots)
			}
			if b.Type == Loopfile && info.Snapshots[0].Used == nil {
				t.Error("a loopfile snapshot lists no used bytes")
			}
			if _, err := w.store.RestoreSnapshot(b, id, "nope", CopyOptions{Holder: w.holder}); !errdefs.IsNotFound(err) {
				t.Errorf("restore of a missing snapshot = %v, want NotFound", err)
			}
			if _, err := w.store.RestoreSnapshot(b, id, "s1", CopyOptions{Holder: w.holder}); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, "after restore", w.read(t, b, id, "data/a", "data/b"), map[string]string{"data/a": "one", "data/b": "<none>"})
			m, err := ReadMeta(b.Dir(id))
			if err != nil || m.Size != 16<<20 || m.Class != "db" {
				t.Errorf("meta after restore = %+v, %v", m, err)
			}
			if b.Type == Loopfile {
				// The restored image reserves its size (DESIGN.md, Space).
				if n, _ := allocated(filepath.Join(b.Dir(id), imageFile)); n < 16<<20 {
					t.Errorf("restored image holds %d bytes, want its 16 MiB reserved", n)
				}
			}
			if left := hiddenLeft(t, filepath.Dir(b.Dir(id))); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}

			if err := w.store.RemoveSnapshot(b, id, "s1"); err != nil {
				t.Fatal(err)
			}
			if snaps, err := w.store.Snapshots(b, id); err != nil || len(snaps) != 0 {
				t.Errorf("snapshots after rm = %+v, %v", snaps, err)
			}
			if err := w.store.RemoveSnapshot(b, id, "s1"); !errdefs.IsNotFound(err) {
				t.Errorf("second rm = %v, want NotFound", err)
			}
			// A volume goes with its snapshots.
			if _, err := w.store.CreateSnapshot(b, id, "s2", CopyOptions{Holder: w.holder}); err != nil {
				t.Fatal(err)
			}
			if err := w.store.Remove(b, id, w.holder); err != nil {
				t.Fatal(err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(b.Dir(id))); len(entries) != 0 {
				t.Errorf("left after volume rm: %v", entries)
			}
		})
	}
}

func TestCloneAndReset(t *testing.T) {
	w := newSnapWorld(t)
	for _, b := range []Backend{w.dir, w.loopfile} {
		t.Run(b.Type, func(t *testing.T) {
			src, dst := vid("ns", "vm-"+b.Type), vid("ns", "vm-"+b.Type+"-clone")
			img := &Image{Name: "busybox", ChainID: "sha256:1"}
			if err := w.store.Create(b, src, Meta{Size: 16 << 20, Class: "vm", Labels: map[string]string{"team": "a"}}); err != nil {
				t.Fatal(err)
			}
			if err := RecordImage(b.Dir(src), *img, "lower"); err != nil {
				t.Fatal(err)
			}
			w.write(t, b, src, map[string]string{"upper/etc/motd": "changed", "work/x": "w", "keep": "k"})
			info, err := w.store.Clone(b, src, dst, CopyOptions{Holder: w.holder})
			if err != nil {
				t.Fatal(err)
			}
			if info.Name != dst.Name() || info.Class != "vm" || info.Labels["team"] != "a" || info.Image == nil || *info.Image != *img || info.Size != 16<<20 {
				t.Errorf("clone = %+v", info.Meta)
			}
			sameFiles(t, "clone", w.read(t, b, dst, "upper/etc/motd"), map[string]string{"upper/etc/motd": "changed"})
			if _, err := w.store.Clone(b, src, dst, CopyOptions{Holder: w.holder}); !errdefs.IsAlreadyExists(err) {
				t.Errorf("second clone = %v, want AlreadyExists", err)
			}

			if err := w.store.Reset(b, src, w.holder); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, "after reset", w.read(t, b, src, "upper/etc/motd", "work/x", "keep"),
				map[string]string{"upper/etc/motd": "<none>", "work/x": "<none>", "keep": "k"})
			if m, _ := ReadMeta(b.Dir(src)); m.Image != nil || m.Lower != "" {
				t.Errorf("reset kept the image record: %+v", m)
			}
			// The clone is a volume of its own.
			sameFiles(t, "clone after reset", w.read(t, b, dst, "upper/etc/motd"), map[string]string{"upper/etc/motd": "changed"})
			// A volume with no root layer is no machine root.
			if err := w.store.Reset(b, src, w.holder); !errdefs.IsFailedPrecondition(err) {
				t.Errorf("reset of a volume with no root layer = %v, want FailedPrecondition", err)
			}
		})
	}
}

func snapRoots(state string) Roots {
	return Roots{Mounts: filepath.Join(state, "mounts"), State: state}
}

// holdAs holds volume id's lock as container c, as a shim would.
func (w *snapWorld) holdAs(t *testing.T, b Backend, id ID, c string) {
	t.Helper()
	other := NewLocks()
	h := Holder{Namespace: "ns", Container: c, Since: time.Now(), PID: 4242}
	if err := other.Acquire(b.LockPath(id), h, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Release(b.LockPath(id), h) })
}

func TestHeldVolumeRefused(t *testing.T) {
	w := newSnapWorld(t)
	for _, b := range []Backend{w.dir, w.loopfile} {
		t.Run(b.Type, func(t *testing.T) {
			id := vid("ns", "held-"+b.Type)
			if err := w.store.Create(b, id, Meta{Size: 16 << 20}); err != nil {
				t.Fatal(err)
			}
			w.write(t, b, id, map[string]string{"upper/a": "1"})
			if _, err := w.store.CreateSnapshot(b, id, "s1", CopyOptions{Holder: w.holder}); err != nil {
				t.Fatal(err)
			}
			w.holdAs(t, b, id, "ctr-1")
			for what, err := range map[string]error{
				"restore": func() error {
					_, err := w.store.RestoreSnapshot(b, id, "s1", CopyOptions{Holder: w.holder})
					return err
				}(),
				"reset": w.store.Reset(b, id, w.holder),
			} {
				if !errors.Is(err, ErrHeld) || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "ctr-1") {
					t.Errorf("%s of a held volume = %v, want ErrHeld naming ctr-1", what, err)
				}
			}
			if b.Type == Dir {
				_, err := w.store.CreateSnapshot(b, id, "s2", CopyOptions{Holder: w.holder})
				if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "ctr-1") {
					t.Errorf("live snapshot of a dir volume = %v, want ErrHeld naming ctr-1", err)
				}
			}
		})
	}
}

// TestLiveSnapshotFreezes snapshots a loopfile volume that a container
// holds and has mounted: the filesystem is frozen for the copy and thawed.
func TestLiveSnapshotFreezes(t *testing.T) {
	w := newSnapWorld(t)
	b := w.loopfile
	id := vid("ns", "live")
	if err := w.store.Create(b, id, Meta{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	w.write(t, b, id, map[string]string{"a": "before"})
	w.holdAs(t, b, id, "ctr-live")
	target := w.store.MountPath(id)
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (host.Linux{}).Mount(mount.Mount{Type: "ext4", Source: filepath.Join(b.Dir(id), imageFile), Options: []string{"loop"}}, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { (host.Linux{}).Unmount(target) })
	if err := os.WriteFile(filepath.Join(target, "a"), []byte("live"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := w.store.CreateSnapshot(b, id, "live", CopyOptions{Holder: w.holder})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Live || snap.Frozen <= 0 {
		t.Errorf("snapshot = %+v, want live with a freeze time", snap)
	}
	// Thawed: FITHAW of a filesystem that is not frozen is EINVAL.
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.IoctlSetInt(fd, ioctlFITHAW, 0)
	unix.Close(fd)
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("FITHAW after the snapshot = %v, want EINVAL (not frozen)", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(id), snapshotsDir, frozenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("freeze marker left: %v", err)
	}
	// The snapshot holds what was written before it, synced by the freeze.
	if err := (host.Linux{}).Unmount(target); err != nil {
		t.Fatal(err)
	}
	snapMount := filepath.Join(t.TempDir(), "m")
	os.Mkdir(snapMount, 0o700)
	if err := (host.Linux{}).Mount(mount.Mount{Type: "ext4", Source: filepath.Join(snapshotDir(b.Dir(id), "live"), imageFile), Options: []string{"loop", "ro"}}, snapMount); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(snapMount, "a"))
	(host.Linux{}).Unmount(snapMount)
	if string(got) != "live" {
		t.Errorf("snapshot holds a = %q, %v; want the live write", got, err)
	}
}

// The killed copy runs in a child: this test binary run again with
// snapKillEnv set, which makes the copy kill itself with SIGKILL midway.
const snapKillEnv = "PERSIST_TEST_SNAPSHOT_KILL"

func TestMain(m *testing.M) {
	if v := os.Getenv(snapKillEnv); v != "" {
		os.Exit(runKilledCopy(v))
	}
	os.Exit(m.Run())
}

// runKilledCopy is the child: op|state|backend type|backend path|volume.
func runKilledCopy(v string) int {
	p := strings.Split(v, "|")
	s := Open(snapRoots(p[1]), host.Linux{}, NewLocks())
	b := Backend{Name: "b", Type: p[2], Path: p[3]}
	id := vid("ns", p[4])
	o := CopyOptions{Holder: Holder{Namespace: "ns", Container: "killed"}, Progress: func(done, total int64) {
		if done > 0 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}}
	var err error
	switch p[0] {
	case "create":
		_, err = s.CreateSnapshot(b, id, "killed", o)
	case "restore":
		_, err = s.RestoreSnapshot(b, id, "s1", o)
	case "clone":
		_, err = s.Clone(b, id, vid("ns", p[4]+"-clone"), o)
	}
	os.Stderr.WriteString("not killed: " + errString(err) + "\n")
	return 3
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestKilledCopyLeavesVolumeWhole kills snapshot create, restore and clone
// in the middle of their copy: the volume keeps its content, no half-made
// snapshot or clone is visible, and what is left is a hidden directory
// that gc removes (HiddenVolume parses it).
func TestKilledCopyLeavesVolumeWhole(t *testing.T) {
	w := newSnapWorld(t)
	big := strings.Repeat("x", 20<<20) // more than one copy chunk
	for _, b := range []Backend{w.dir, w.loopfile} {
		for _, op := range []string{"create", "restore", "clone"} {
			t.Run(b.Type+"/"+op, func(t *testing.T) {
				id := vid("ns", "k-"+op)
				if err := w.store.Create(b, id, Meta{Size: 64 << 20}); err != nil {
					t.Fatal(err)
				}
				w.write(t, b, id, map[string]string{"big": big, "a": "one"})
				if _, err := w.store.CreateSnapshot(b, id, "s1", CopyOptions{Holder: w.holder}); err != nil {
					t.Fatal(err)
				}
				w.write(t, b, id, map[string]string{"a": "two"})
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), snapKillEnv+"="+strings.Join([]string{op, w.store.roots.State, b.Type, b.Path, id.Name()}, "|"))
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				err := cmd.Run()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("child = %v, want killed by SIGKILL; stderr: %s", err, stderr.String())
				}
				got := w.read(t, b, id, "a", "big")
				if got["a"] != "two" || got["big"] != big {
					t.Errorf("volume after a killed %s: a = %q, big whole = %v", op, got["a"], got["big"] == big)
				}
				snaps, err := w.store.Snapshots(b, id)
				if err != nil || len(snaps) != 1 || snaps[0].Name != "s1" {
					t.Errorf("snapshots after a killed %s = %+v, %v; want s1 alone", op, snaps, err)
				}
				if _, err := w.store.Inspect(b, vid("ns", id.Name()+"-clone")); !errdefs.IsNotFound(err) {
					t.Errorf("a killed clone is visible: %v", err)
				}
				left := hiddenLeft(t, filepath.Dir(b.Dir(id)))
				if len(left) != 1 {
					t.Fatalf("hidden dirs left = %v, want the one the killed copy made", left)
				}
				if name, ok := HiddenVolume(left[0]); !ok || (name != id.Name() && name != id.Name()+"-clone") {
					t.Errorf("HiddenVolume(%s) = %q, %v: gc would not find it", left[0], name, ok)
				}
				// The next operation goes on; gc's removal stands in here.
				os.RemoveAll(filepath.Join(filepath.Dir(b.Dir(id)), left[0]))
				if _, err := w.store.RestoreSnapshot(b, id, "s1", CopyOptions{Holder: w.holder}); err != nil {
					t.Fatal(err)
				}
				sameFiles(t, "restore after the kill", w.read(t, b, id, "a"), map[string]string{"a": "one"})
			})
		}
	}
}

// A snapshot killed while the filesystem was frozen leaves it frozen and
// says so in its marker: the next snapshot operation thaws it.
func TestFrozenLeftoverThawed(t *testing.T) {
	w := newSnapWorld(t)
	b := w.loopfile
	id := vid("ns", "frozen")
	if err := w.store.Create(b, id, Meta{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	w.holdAs(t, b, id, "ctr-frozen")
	target := w.store.MountPath(id)
	if err := os.MkdirAll(target, 0o700); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(b.Dir(id), imageFile)
	if err := (host.Linux{}).Mount(mount.Mount{Type: "ext4", Source: image, Options: []string{"loop"}}, target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { (host.Linux{}).Unmount(target) })
	// What a snapshot killed between FIFREEZE and FITHAW leaves.
	if err := os.MkdirAll(filepath.Join(b.Dir(id), snapshotsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(b.Dir(id), snapshotsDir, frozenFile), frozenMount{Path: target, Image: image}); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.IoctlSetInt(fd, ioctlFIFREEZE, 0)
	unix.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // thaw even if the test fails, so that the unmount works
		if fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0); err == nil {
			unix.IoctlSetInt(fd, ioctlFITHAW, 0)
			unix.Close(fd)
		}
	})
	snaps, err := w.store.Snapshots(b, id) // reads only: thaws nothing
	if err != nil || len(snaps) != 0 {
		t.Fatalf("snapshots = %+v, %v", snaps, err)
	}
	if _, err := w.store.CreateSnapshot(b, id, "after", CopyOptions{Holder: w.holder}); err != nil {
		t.Fatal(err)
	}
	if fd, err = unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY, 0); err != nil {
		t.Fatal(err)
	}
	err = unix.IoctlSetInt(fd, ioctlFITHAW, 0)
	unix.Close(fd)
	if !errors.Is(err, unix.EINVAL) {
		t.Errorf("FITHAW after the next snapshot = %v, want EINVAL (thawed)", err)
	}
	if _, err := os.Stat(filepath.Join(b.Dir(id), snapshotsDir, frozenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("freeze marker left: %v", err)
	}
}

// A loopfile volume that a container holds but has not mounted (it is
// starting or stopping) is not frozen: the path would name the state dir's
// filesystem. The snapshot is Unavailable, to be asked again.
func TestLiveSnapshotOfUnmountedVolume(t *testing.T) {
	w := newSnapWorld(t)
	b := w.loopfile
	id := vid("ns", "starting")
	if err := w.store.Create(b, id, Meta{Size: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	w.holdAs(t, b, id, "ctr-starting")
	// The mount path's filesystem is a tmpfs, which cannot be frozen: were
	// the check gone, the snapshot would fail otherwise, and freeze no
	// filesystem the machine needs.
	parent := filepath.Dir(w.store.MountPath(id))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", parent, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(parent, 0) })
	if err := os.Mkdir(w.store.MountPath(id), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := w.store.CreateSnapshot(b, id, "s1", CopyOptions{Holder: w.holder})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "try again") {
		t.Errorf("live snapshot of an unmounted volume = %v, want Unavailable saying to try again", err)
	}
	if snaps, _ := w.store.Snapshots(b, id); len(snaps) != 0 {
		t.Errorf("snapshots = %+v, want none", snaps)
	}
}
