//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// listEnv is a store with one dir backend, for List's tests.
type listEnv struct {
	s *Store
	b Backend
}

func newListEnv(t *testing.T) listEnv {
	t.Helper()
	dir := t.TempDir()
	b := Backend{Name: "local", Type: Dir, Path: filepath.Join(dir, "volumes")}
	if err := os.Mkdir(b.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	return listEnv{s: Open(stateRoots(filepath.Join(dir, "state")), host.Linux{}, NewLocks()), b: b}
}

func (e listEnv) create(t *testing.T, ns, tenant, name string) ID {
	t.Helper()
	id, err := NewID(ns, tenant, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.s.Create(e.b, id, Meta{Class: "c"}); err != nil {
		t.Fatal(err)
	}
	return id
}

// where names each listed volume: namespace/tenant/name@backend.
func where(infos []Info) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.Namespace+"/"+i.Tenant+"/"+i.Name+"@"+i.Backend)
	}
	return out
}

// TestListHolders: List tests only the locks whose files exist; a held
// volume must still show its holder, whether its lock is exclusive or
// shared, in a tenant or under a cut long name, and a lock file that no one
// holds (its shim died) shows none.
func TestListHolders(t *testing.T) {
	e := newListEnv(t)
	long := strings.Repeat("l", 100)
	free := e.create(t, "ns", "", "free")
	held := e.create(t, "ns", "", "held")
	shared := e.create(t, "ns", "", "shared")
	stale := e.create(t, "ns", "", "stale")
	inTenant := e.create(t, "ns", "team", "held")
	longID := e.create(t, "ns", "", long)
	e.create(t, "other", "", "held-elsewhere")
	locks := NewLocks()
	for _, id := range []ID{held, inTenant, longID} {
		if err := locks.Acquire(e.b.LockPath(id), holderA, false); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { locks.Release(e.b.LockPath(id), holderA) })
	}
	if err := locks.Acquire(e.b.LockPath(shared), holderB, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locks.Release(e.b.LockPath(shared), holderB) })
	b, _ := json.Marshal(holderB)
	if err := os.WriteFile(e.b.LockPath(stale), b, 0o600); err != nil {
		t.Fatal(err)
	}

	infos, err := e.s.List([]Backend{e.b}, "ns")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ns//free@local", "ns//held@local", "ns//" + long + "@local", "ns//shared@local", "ns//stale@local", "ns/team/held@local"}
	if got := where(infos); !slices.Equal(got, want) {
		t.Fatalf("List(ns) = %v, want %v: another namespace's volume or a missing one", got, want)
	}
	holders := map[ID]*Holder{}
	for _, i := range infos {
		id, err := i.ID()
		if err != nil {
			t.Fatal(err)
		}
		holders[id] = i.Holder
		if i.Dir != e.b.Dir(id) {
			t.Errorf("volume %s: dir %s, want %s", id, i.Dir, e.b.Dir(id))
		}
	}
	for _, id := range []ID{held, inTenant, longID} {
		if h := holders[id]; h == nil || !sameHolder(*h, holderA) {
			t.Errorf("volume %s: holder %+v, want %+v", id, h, holderA)
		}
	}
	if h := holders[shared]; h == nil || h.Container != "" {
		t.Errorf("shared volume: holder %+v, want an empty one (shared holders write no name)", h)
	}
	for _, id := range []ID{free, stale} {
		if h := holders[id]; h != nil {
			t.Errorf("volume %s: holder %+v, want none", id, h)
		}
	}
	all, err := e.s.List([]Backend{e.b}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(want)+1 || all[len(all)-1].Namespace != "other" || all[len(all)-1].Holder != nil {
		t.Errorf("List of every namespace = %v, want the other namespace's volume last, free", where(all))
	}
}

// TestListOrder: volumes are sorted by namespace, tenant, name and
// backend, field by field: vol before vol-1.
func TestListOrder(t *testing.T) {
	e := newListEnv(t)
	second := Backend{Name: "more", Type: Dir, Path: filepath.Join(filepath.Dir(e.b.Path), "more")}
	if err := os.Mkdir(second.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][3]string{{"b", "", "x"}, {"a", "t", "vol"}, {"a", "", "vol-1"}, {"a", "", "vol"}, {"a", "", "vol.2"}, {"a", "s", "z"}} {
		e.create(t, v[0], v[1], v[2])
	}
	id := vid("a", "vol")
	if err := e.s.Create(second, id, Meta{}); err != nil {
		t.Fatal(err)
	}
	infos, err := e.s.List([]Backend{second, e.b}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a//vol@local", "a//vol@more", "a//vol-1@local", "a//vol.2@local", "a/s/z@local", "a/t/vol@local", "b//x@local"}
	if got := where(infos); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

// TestListSkipsVanished: a volume whose directory was read but whose
// volume.json is gone by the time it is opened (removed meanwhile) is left
// out, not an error; so is a hidden directory of one being made.
func TestListSkipsVanished(t *testing.T) {
	e := newListEnv(t)
	e.create(t, "ns", "", "kept")
	gone := e.create(t, "ns", "", "gone")
	if err := os.Remove(filepath.Join(e.b.Dir(gone), metaFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.b.Path, "ns", creatingPrefix+"new-0a0b0c"), 0o700); err != nil {
		t.Fatal(err)
	}
	infos, err := e.s.List([]Backend{e.b}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := where(infos); !slices.Equal(got, []string{"ns//kept@local"}) {
		t.Errorf("List = %v, want kept alone", got)
	}
}

// TestListWhileChanging: volumes created and removed while List runs never
// make it fail, and never hide or garble the volumes that stay.
func TestListWhileChanging(t *testing.T) {
	e := newListEnv(t)
	var want []string
	for i := range 300 {
		e.create(t, "ns", "", fmt.Sprintf("stay-%03d", i))
		want = append(want, fmt.Sprintf("ns//stay-%03d@local", i))
	}
	h := Holder{Namespace: "ns", Container: "churn"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churnErr error
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := vid("ns", fmt.Sprintf("churn-%d", i%50))
			err := e.s.Create(e.b, id, Meta{})
			if errdefs.IsAlreadyExists(err) {
				err = e.s.Remove(e.b, id, h)
			}
			if err != nil {
				churnErr = err
				return
			}
		}
	})
	for range 30 {
		infos, err := e.s.List([]Backend{e.b}, "ns")
		if err != nil {
			t.Fatalf("List while volumes come and go: %v", err)
		}
		var stay []string
		for _, i := range infos {
			if strings.HasPrefix(i.Name, "stay-") {
				stay = append(stay, where([]Info{i})...)
			} else if !strings.HasPrefix(i.Name, "churn-") || i.Type != Dir || i.Created.IsZero() {
				t.Errorf("listed %+v, a volume half read", i)
			}
		}
		if !slices.Equal(stay, want) {
			t.Fatalf("List listed %d of the %d volumes that stay", len(stay), len(want))
		}
	}
	close(stop)
	wg.Wait()
	if churnErr != nil {
		t.Fatal(churnErr)
	}
}

// TestMetaReaderLikeReadMeta: List's reader reads what ReadMeta reads,
// from a path or from an open parent, and fails where it fails.
func TestMetaReaderLikeReadMeta(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	base := Meta{Name: "v", Namespace: "ns", Backend: "local", Type: Dir, Created: at, LastAttached: at, LastHolder: "c1"}
	big := base
	big.Labels = map[string]string{}
	for i := range 300 {
		big.Labels[fmt.Sprintf("key-%03d", i)] = strings.Repeat("v", 40) // volume.json over 4 KiB
	}
	attached := func(s string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, attachedFile), []byte(s), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		meta  *Meta
		setup func(t *testing.T, dir string)
		check func(t *testing.T, m Meta, err error)
	}{
		{name: "plain", meta: &base},
		{name: "large", meta: &big},
		{name: "newer attach", meta: &base, setup: attached(`{"last_attached":"2026-03-05T00:00:00Z","last_holder":"c2"}`),
			check: func(t *testing.T, m Meta, err error) {
				if err != nil || m.LastHolder != "c2" {
					t.Errorf("got %+v, %v: want last holder c2 from attached.json", m, err)
				}
			}},
		{name: "older attach", meta: &base, setup: attached(`{"last_attached":"2026-03-01T00:00:00Z","last_holder":"c0"}`)},
		{name: "cut attach", meta: &base, setup: attached(`{"last_attached":"2026-03-05T0`)},
		{name: "empty attach", meta: &base, setup: attached(``)},
		{name: "missing", check: func(t *testing.T, m Meta, err error) {
			if !errdefs.IsNotFound(err) {
				t.Errorf("got %v, want NotFound", err)
			}
		}},
		{name: "corrupt", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, metaFile), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, check: func(t *testing.T, m Meta, err error) {
			var syntax *json.SyntaxError
			if !errors.As(err, &syntax) || !strings.Contains(err.Error(), filepath.Join("v", metaFile)) {
				t.Errorf("got %v, want a JSON syntax error naming the file", err)
			}
		}},
		{name: "link", meta: &base, setup: func(t *testing.T, dir string) {
			real := filepath.Join(filepath.Dir(dir), "elsewhere.json")
			if err := os.Rename(filepath.Join(dir, metaFile), real); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(real, filepath.Join(dir, metaFile)); err != nil {
				t.Fatal(err)
			}
		}, check: func(t *testing.T, m Meta, err error) {
			if !errors.Is(err, unix.ELOOP) {
				t.Errorf("got %v, want ELOOP: volume.json is a link, never followed", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "v")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.meta != nil {
				if err := WriteMeta(dir, *tc.meta); err != nil {
					t.Fatal(err)
				}
			}
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			want, wantErr := ReadMeta(dir)
			pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pfd)
			var r metaReader
			for _, from := range []struct {
				fd  int
				rel string
			}{{unix.AT_FDCWD, dir}, {pfd, "v"}, {pfd, "v"}} { // twice: the buffer is reused
				got, err := r.read(from.fd, from.rel, dir)
				if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
					t.Fatalf("read from %q: error %v, ReadMeta's %v", from.rel, err, wantErr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("read from %q =\n %+v\nReadMeta =\n %+v", from.rel, got, want)
				}
				if tc.check != nil {
					tc.check(t, got, err)
				}
			}
		})
	}
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestListTenantsLeaveNoDescriptor: each directory of volumes is opened
// while its volumes are read and closed after the last, so many tenants
// leave no descriptor behind.
func TestListTenantsLeaveNoDescriptor(t *testing.T) {
	e := newListEnv(t)
	const tenants = 200
	for i := range tenants {
		e.create(t, "ns", fmt.Sprintf("t%03d", i), "data")
	}
	e.create(t, "ns", "", "plain")
	before := openFDs(t)
	infos, err := e.s.List([]Backend{e.b}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != tenants+1 || infos[0].Tenant != "" || infos[tenants].Tenant != fmt.Sprintf("t%03d", tenants-1) {
		t.Errorf("List listed %d volumes, want %d: %v", len(infos), tenants+1, where(infos[:min(3, len(infos))]))
	}
	if after := openFDs(t); after != before {
		t.Errorf("List left %d descriptors open", after-before)
	}
}

// TestListDirGone: a directory of volumes removed after it was read has
// no volumes left to read, which is no error.
func TestListDirGone(t *testing.T) {
	e := newListEnv(t)
	e.create(t, "ns", "team", "data")
	d, _, err := readListDir(e.b, "ns", "team")
	if err != nil || d == nil || len(d.disks) != 1 {
		t.Fatalf("readListDir = %+v, %v", d, err)
	}
	if err := os.Rename(d.path, filepath.Join(e.b.Path, "ns", ".removed")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.at("data"); !errdefs.IsNotFound(err) {
		t.Errorf("at() in a directory gone = %v, want NotFound", err)
	}
	d.done()
}
