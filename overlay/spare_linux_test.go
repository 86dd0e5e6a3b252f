package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/journal"
)

const spareSize = 16 << 20

// spareEnv is a state dir's scratch and spares directories, on the disk
// (a loop device's image may not be on tmpfs for every kernel).
type spareEnv struct {
	t      *testing.T
	dir    string
	spares Spares
	h      host.Linux
}

func newSpareEnv(t *testing.T) *spareEnv {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	e := &spareEnv{t: t, dir: dir, h: host.Linux{Templates: filepath.Join(dir, "templates")}}
	e.spares = Spares{Dir: filepath.Join(dir, "spare"), Mounter: e.h}
	t.Cleanup(func() {
		ms, _ := host.MountsUnder(dir)
		for _, m := range ms {
			e.h.Unmount(m)
		}
	})
	return e
}

// mountOwn mounts a disk scratch's filesystem for the area named name, as
// a container's setup does, with its space reserved, and returns its root.
func (e *spareEnv) mountOwn(name string) string {
	e.t.Helper()
	j, err := journal.Create(filepath.Join(e.dir, "journal-"+name))
	if err != nil {
		e.t.Fatal(err)
	}
	defer j.Close()
	s := Scratch{Path: "/var/tmp", Disk: true, Size: spareSize, ReserveLater: true, Spares: e.spares}
	area := filepath.Join(e.dir, name)
	if err := s.MountOwn(e.h, j, area); err != nil {
		e.t.Fatal(err)
	}
	return s.Root(area)
}

// assertMounted fails unless root is a mounted ext4 with nothing in it but
// lost+found.
func (e *spareEnv) assertEmptyMount(root string) {
	e.t.Helper()
	if ok, err := mountinfo.Mounted(root); !ok || err != nil {
		e.t.Fatalf("%s mounted = %v, %v", root, ok, err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		if en.Name() != "lost+found" {
			e.t.Errorf("%s holds %s of its last container", root, en.Name())
		}
	}
}

func (e *spareEnv) spareNames() []string {
	e.t.Helper()
	names, err := readNames(e.spares.Dir)
	if err != nil {
		e.t.Fatal(err)
	}
	return names
}

// A released disk scratch is emptied and kept mounted; the next one of its
// size takes it, with nothing of the last container in it; a drain leaves
// no mount, loop device or file.
func TestSparesKeepAndTake(t *testing.T) {
	e := newSpareEnv(t)
	root := e.mountOwn("a")
	outside := filepath.Join(e.dir, "outside")
	if err := os.WriteFile(outside, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"upper/deep/er", "work/work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "upper/deep/er/secret"), []byte("tenant a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "upper/link")); err != nil {
		t.Fatal(err)
	}
	if err := host.Reserve(root+imageExt, spareSize); err != nil {
		t.Fatal(err)
	}

	if !e.spares.Put(root) {
		t.Fatal("Put of an emptied-able scratch = false")
	}
	if _, err := os.Lstat(filepath.Dir(root)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the released area is still at its place: %v", err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "host" {
		t.Errorf("a link in the scratch reached the host file: %q, %v", b, err)
	}
	names := e.spareNames()
	if len(names) != 1 || names[0][:len(fmt.Sprint(spareSize))+1] != fmt.Sprint(spareSize)+"-" {
		t.Fatalf("spares = %q, want one of size %d", names, spareSize)
	}
	e.assertEmptyMount(filepath.Join(e.spares.Dir, names[0], rootName))

	// The next scratch of that size takes it, through MountOwn.
	root = e.mountOwn("b")
	if loops := e.loops(); len(loops) != 1 {
		t.Errorf("loop devices after taking the spare = %q, want the spare's", loops)
	}
	e.assertEmptyMount(root)
	if names := e.spareNames(); len(names) != 0 {
		t.Errorf("spares after the take = %q", names)
	}
	// Another size makes its own.
	other := Scratch{Path: "/tmp", Disk: true, Size: 2 * spareSize, Spares: e.spares}
	if ok, err := other.Spares.Take(filepath.Join(e.dir, "c"), other.Size); ok || err != nil {
		t.Errorf("Take of another size = %v, %v", ok, err)
	}

	if !e.spares.Put(root) {
		t.Fatal("second Put = false")
	}
	if err := e.spares.Drain(); err != nil {
		t.Fatal(err)
	}
	if names := e.spareNames(); len(names) != 0 {
		t.Errorf("spares after Drain = %q", names)
	}
	if ms, _ := host.MountsUnder(e.dir); len(ms) != 0 {
		t.Errorf("mounted after Drain: %q", ms)
	}
	// The kernel detaches an autoclear loop device from a work queue, a
	// moment after its unmount.
	for end := time.Now().Add(10 * time.Second); len(e.loops()) > 0 && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
	}
	if loops := e.loops(); len(loops) > 0 {
		t.Errorf("loop devices left after Drain: %q", loops)
	}
}

// loops lists the loop devices over images in the test's directory.
func (e *spareEnv) loops() []string {
	var out []string
	for _, l := range host.Loops() {
		if strings.HasPrefix(l.Backing, e.dir+"/") {
			out = append(out, l.Name)
		}
	}
	return out
}

func tmpfsMount() mount.Mount {
	return mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}
}

// What Take could not give out whole, or would take long to empty, is not
// kept; nor more than maxSpares of a size.
func TestSparesRefused(t *testing.T) {
	e := newSpareEnv(t)
	reserved := func(root string) string {
		if err := host.Reserve(root+imageExt, spareSize); err != nil {
			t.Fatal(err)
		}
		return root
	}
	tests := []struct {
		name string
		prep func() string
	}{
		{"image not reserved", func() string { return e.mountOwn("sparse") }},
		{"not mounted", func() string {
			root := reserved(e.mountOwn("unmounted"))
			if err := e.h.Unmount(root); err != nil {
				t.Fatal(err)
			}
			return root
		}},
		{"a mount below", func() string {
			root := reserved(e.mountOwn("busy"))
			below := filepath.Join(root, "upper")
			if err := os.Mkdir(below, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "a-file"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := e.h.Mount(tmpfsMount(), below); err != nil {
				t.Fatal(err)
			}
			return root
		}},
		{"too many files", func() string {
			root := reserved(e.mountOwn("full"))
			for i := range maxSpareInodes + 1 {
				if err := os.WriteFile(filepath.Join(root, fmt.Sprint(i)), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return root
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.prep()
			if e.spares.Put(root) {
				t.Fatal("Put = true")
			}
			if _, err := os.Lstat(root + imageExt); err != nil {
				t.Errorf("the refused scratch was moved: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(root, "a-file")); tt.name == "a mount below" && err != nil {
				t.Errorf("the scratch was emptied while a mount was left on it: %v", err)
			}
		})
	}
	var roots []string
	for i := range maxSpares + 1 {
		roots = append(roots, reserved(e.mountOwn(fmt.Sprint("kept", i))))
	}
	for i, root := range roots {
		if got, want := e.spares.Put(root), i < maxSpares; got != want {
			t.Errorf("Put %d = %v, want %v", i, got, want)
		}
	}
	if err := e.spares.Drain(); err != nil {
		t.Fatal(err)
	}
}

// Two containers that start together never take the same spare, and a
// spare that is no longer mounted (the host restarted) is drained, not
// given out.
func TestSparesTakenOnce(t *testing.T) {
	e := newSpareEnv(t)
	root := e.mountOwn("a")
	if err := host.Reserve(root+imageExt, spareSize); err != nil {
		t.Fatal(err)
	}
	if !e.spares.Put(root) {
		t.Fatal("Put = false")
	}
	var wg sync.WaitGroup
	took := make([]bool, 8)
	for i := range took {
		wg.Go(func() {
			ok, err := e.spares.Take(filepath.Join(e.dir, fmt.Sprint("taker", i)), spareSize)
			if err != nil {
				t.Error(err)
			}
			took[i] = ok
		})
	}
	wg.Wait()
	n := 0
	for i, ok := range took {
		if ok {
			n++
			root = filepath.Join(e.dir, fmt.Sprint("taker", i), rootName)
		}
	}
	if n != 1 {
		t.Fatalf("%d takers got the one spare", n)
	}

	if !e.spares.Put(root) {
		t.Fatal("Put = false")
	}
	stale := filepath.Join(e.spares.Dir, e.spareNames()[0], rootName)
	if err := e.h.Unmount(stale); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.spares.Take(filepath.Join(e.dir, "after-restart"), spareSize); ok || err != nil {
		t.Errorf("Take of an unmounted spare = %v, %v; want false", ok, err)
	}
	if names := e.spareNames(); len(names) != 0 {
		t.Errorf("the unmounted spare was left: %q", names)
	}
	if _, err := os.Lstat(filepath.Join(e.dir, "after-restart")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the taker's area is left: %v", err)
	}
}
