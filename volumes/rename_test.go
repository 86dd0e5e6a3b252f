//go:build linux

package volumes

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
)

type renameEnv struct {
	s    *Store
	dir  Backend
	loop Backend
}

func newRenameEnv(t *testing.T) *renameEnv {
	t.Helper()
	tmp := t.TempDir()
	e := &renameEnv{
		s:    Open(stateRoots(filepath.Join(tmp, "state")), &hosttest.Mounter{}, NewLocks()),
		dir:  Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "vols")},
		loop: Backend{Name: "sized", Type: Loopfile, Path: filepath.Join(tmp, "loop"), Overcommit: true},
	}
	for _, d := range []string{e.dir.Path, e.loop.Path} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// make creates a volume with a file in its content, and labels.
func (e *renameEnv) make(t *testing.T, b Backend, id ID) {
	t.Helper()
	if err := e.s.Create(b, id, Meta{Class: "db", Size: 1 << 20, Labels: map[string]string{"team": "db"}}); err != nil {
		t.Fatal(err)
	}
	if b.Type == Dir {
		if err := os.WriteFile(filepath.Join(b.Dir(id), "fs", "kept"), []byte("kept"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// renamed checks that the volume once named from is now to, whole.
func (e *renameEnv) renamed(t *testing.T, b Backend, from, to ID) {
	t.Helper()
	if _, err := os.Lstat(b.Dir(from)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s is still there: %v", b.Dir(from), err)
	}
	m, err := readMetaOf(b.Dir(to), to)
	if err != nil {
		t.Fatalf("the renamed volume: %v", err)
	}
	if m.Class != "db" || m.Labels["team"] != "db" || m.Backend != b.Name {
		t.Errorf("the renamed volume's metadata = %+v, want the old one's under the new name", m)
	}
	if b.Type == Dir {
		if got, err := os.ReadFile(filepath.Join(b.Dir(to), "fs", "kept")); err != nil || string(got) != "kept" {
			t.Errorf("the renamed volume's content: %q, %v", got, err)
		}
	} else if _, err := os.Lstat(filepath.Join(b.Dir(to), imageFile)); err != nil {
		t.Errorf("the renamed volume's image: %v", err)
	}
	for _, id := range []ID{from, to} {
		if _, err := os.Lstat(b.LockPath(id)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("rename left the lock %s: %v", b.LockPath(id), err)
		}
	}
	infos, err := e.s.List([]Backend{b}, to.namespace)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range infos {
		names = append(names, v.Tenant+"/"+v.Name)
	}
	if strings.Join(names, ",") != to.tenant+"/"+to.name {
		t.Errorf("List after rename = %v, want only %s/%s", names, to.tenant, to.name)
	}
}

func TestRename(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 100) } // past maxDiskName: a derived directory name
	tid := func(tenant, name string) ID {
		id, err := NewID("ns", tenant, name)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, tc := range []struct {
		name     string
		loop     bool
		from, to ID
	}{
		{"dir", false, vid("ns", "a"), vid("ns", "b")},
		{"loopfile", true, vid("ns", "a"), vid("ns", "b")},
		{"long to short", false, vid("ns", long("x")), vid("ns", "short")},
		{"short to long", false, vid("ns", "short"), vid("ns", long("y"))},
		{"long to long", true, vid("ns", long("x")), vid("ns", long("x")+"z")},
		{"tenant", false, tid("team-a", "a"), tid("team-a", long("b"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRenameEnv(t)
			b := e.dir
			if tc.loop {
				b = e.loop
			}
			e.make(t, b, tc.from)
			if err := e.s.Rename(b, tc.from, tc.to, holderA); err != nil {
				t.Fatal(err)
			}
			e.renamed(t, b, tc.from, tc.to)
		})
	}
}

func TestRenameRefused(t *testing.T) {
	e := newRenameEnv(t)
	a, b := vid("ns", "a"), vid("ns", "b")
	e.make(t, e.dir, a)
	e.make(t, e.dir, b)
	other, _ := NewID("ns", "team-b", "a")
	for _, tc := range []struct {
		name     string
		from, to ID
		is       func(error) bool
		says     string
	}{
		{"taken", a, b, errdefs.IsAlreadyExists, "volume ns/b already exists"},
		{"same name", a, a, errdefs.IsInvalidArgument, "already has that name"},
		{"another tenant", a, other, errdefs.IsInvalidArgument, "keeps its namespace and tenant"},
		{"another namespace", a, vid("ns2", "a"), errdefs.IsInvalidArgument, "keeps its namespace and tenant"},
		{"missing", vid("ns", "nope"), vid("ns", "c"), errdefs.IsNotFound, "does not exist"},
	} {
		err := e.s.Rename(e.dir, tc.from, tc.to, holderA)
		if !tc.is(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: Rename = %v, want an error saying %q", tc.name, err, tc.says)
		}
	}
	// A directory at the new name that holds no volume is not replaced.
	stray := e.dir.Dir(vid("ns", "c"))
	if err := os.Mkdir(stray, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Rename(e.dir, a, vid("ns", "c"), holderA); !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), stray) {
		t.Errorf("Rename onto an empty directory = %v, want AlreadyExists naming it", err)
	}

	// A volume a container holds, or a name a container is attaching, is
	// refused and the holder named.
	other2 := NewLocks()
	for _, held := range []ID{a, vid("ns", "d")} {
		if err := other2.Acquire(e.dir.LockPath(held), holderB, false); err != nil {
			t.Fatal(err)
		}
		err := e.s.Rename(e.dir, a, vid("ns", "d"), holderA)
		if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "container web-2") {
			t.Errorf("Rename with %s held = %v, want ErrHeld naming web-2", held, err)
		}
		if err := other2.Release(e.dir.LockPath(held), holderB); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []ID{a, b} {
		if _, err := readMetaOf(e.dir.Dir(id), id); err != nil {
			t.Errorf("a refused rename changed %s: %v", id, err)
		}
	}
	if _, err := os.Lstat(e.dir.Dir(vid("ns", "d"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused rename made d: %v", err)
	}
}

// A rename cut short after its directory moved, before its volume.json was
// rewritten, is finished by the same rename.
func TestRenameCutShort(t *testing.T) {
	e := newRenameEnv(t)
	a, b := vid("ns", "a"), vid("ns", strings.Repeat("b", 80))
	e.make(t, e.dir, a)
	if err := os.Rename(e.dir.Dir(a), e.dir.Dir(b)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Find([]Backend{e.dir}, b); err == nil {
		t.Fatal("the half-renamed volume is found under its new name: the test tests nothing")
	}
	if got, ok := e.s.HalfRenamed([]Backend{e.loop, e.dir}, a, b); !ok || got.Name != e.dir.Name {
		t.Errorf("HalfRenamed = %v, %v; want backend local", got.Name, ok)
	}
	if err := e.s.Rename(e.dir, a, b, holderA); err != nil {
		t.Fatal(err)
	}
	e.renamed(t, e.dir, a, b)
	if _, ok := e.s.HalfRenamed([]Backend{e.loop, e.dir}, a, b); ok {
		t.Error("HalfRenamed after the rename was finished")
	}
}
