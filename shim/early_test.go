package shim

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// The filesystem of a disk scratch is mounted, journaled, before Create;
// Create's setup goes on from there and mounts nothing twice, and the
// release undoes both parts.
func TestStorageEarlySetupTakenOver(t *testing.T) {
	e := newSetupEnv(t)
	e.bundle = containerBundle(t, e, "c1")
	cfg := e.config(t, twoScratch)
	c := e.container("c1", nil)
	e.host.Journal = state.Dir(cfg.StateDir).Journal("ns", "c1")
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	s1 := filepath.Join(state.Dir(e.state).Scratch("ns", "c1"), "1", "fs") // the disk scratch's filesystem

	e.storage.startEarly(ctx, e.bundle, &bundleSpec{Spec: c.spec}, cfg)
	<-e.storage.early.done
	if want := []string{"makeimage " + s1 + ".img", "mount " + s1}; !reflect.DeepEqual(e.host.Ops(), want) {
		t.Fatalf("host calls before Create = %q, want %q", e.host.Ops(), want)
	}
	if err := e.setup(t, cfg, c); err != nil {
		t.Fatal(err)
	}
	if got := e.host.Ops("makeimage", "mount"); len(got) != 4 || got[0] != "makeimage "+s1+".img" || got[1] != "mount "+s1 {
		t.Errorf("host calls = %q, want the disk scratch once, first", got)
	}
	if m := c.spec.Mounts[2]; m.Destination != "/var/tmp" || m.Source != filepath.Join(s1, "upper") {
		t.Errorf("/var/tmp = %+v, want a bind of the early mount's upper", m)
	}
	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	e.assertReleased(t, "c1")
}

// A setup begun for another class (or container, or config) is undone,
// and Create's starts again; so is one whose Create fails before setup.
func TestStorageEarlySetupUndone(t *testing.T) {
	for _, name := range []string{"another class", "create failed"} {
		t.Run(name, func(t *testing.T) {
			e := newSetupEnv(t)
			e.bundle = containerBundle(t, e, "c1")
			cfg := e.config(t, twoScratch+`
[classes.d]
mode = "immutable"
selectable = true
`)
			c := e.container("c1", nil)
			e.host.Journal = state.Dir(cfg.StateDir).Journal("ns", "c1")
			ctx := namespaces.WithNamespace(context.Background(), "ns")
			s1 := filepath.Join(state.Dir(e.state).Scratch("ns", "c1"), "1", "fs") // the disk scratch's filesystem
			e.storage.startEarly(ctx, e.bundle, &bundleSpec{Spec: c.spec}, cfg)
			<-e.storage.early.done
			if name == "create failed" {
				e.storage.dropEarly(ctx)
			} else {
				c.spec.Annotations = map[string]string{AnnotationClass: "d"}
				if err := e.setup(t, cfg, c); err != nil {
					t.Fatal(err)
				}
			}
			if got := e.host.Ops("unmount"); !reflect.DeepEqual(got, []string{"unmount " + s1}) {
				t.Errorf("unmounts = %q, want the early mount undone", got)
			}
			e.assertReleased(t, "c1")
		})
	}
}

// containerBundle makes a bundle named for container id, as containerd's
// are: the daemon knows its container by its bundle before Create.
func containerBundle(t *testing.T, e *setupEnv, id string) string {
	t.Helper()
	b := filepath.Join(e.tmp, id)
	if err := os.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	return b
}

// The class volumes that exist are attached before Create, which takes
// them over and attaches only the rest; a volume still to be made is made
// by Create alone.
func TestStorageEarlyVolumes(t *testing.T) {
	e := newSetupEnv(t)
	e.bundle = containerBundle(t, e, "c1")
	cfg := e.config(t, `
[classes.c]
mode = "immutable"
[[classes.c.volumes]]
path = "/var/lib/db"
backend = "srv"
name = "old"
[[classes.c.volumes]]
path = "/srv/new"
backend = "srv"
name = "new"
`)
	store := volumes.Open(state.Dir(cfg.StateDir).Volumes(), e.host, volumes.NewLocks())
	srv := volumes.Backend{Name: "srv", Type: volumes.Dir, Path: e.srv}
	old, err := volumes.NewID("ns", "", "old")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create(srv, old, volumes.Meta{}); err != nil {
		t.Fatal(err)
	}
	newID, err := volumes.NewID("ns", "", "new")
	if err != nil {
		t.Fatal(err)
	}
	c := e.container("c1", nil)
	jpath := state.Dir(cfg.StateDir).Journal("ns", "c1")
	e.host.Journal = jpath
	ctx := namespaces.WithNamespace(context.Background(), "ns")

	e.storage.startEarly(ctx, e.bundle, &bundleSpec{Spec: c.spec}, cfg)
	<-e.storage.early.done
	if e.storage.early.err != nil {
		t.Fatal(e.storage.early.err)
	}
	oldLock, newLock := srv.LockPath(old), srv.LockPath(newID)
	if got := lockSteps(t, jpath); !reflect.DeepEqual(got, []string{oldLock}) {
		t.Errorf("locks taken before Create = %q, want the existing volume's only", got)
	}
	if _, err := os.Lstat(srv.Dir(newID)); err == nil {
		t.Error("the missing volume was made before Create")
	}

	if err := e.setup(t, cfg, c); err != nil {
		t.Fatal(err)
	}
	if got := lockSteps(t, jpath); !reflect.DeepEqual(got, []string{oldLock, newLock}) {
		t.Errorf("locks taken = %q, want each volume's once", got)
	}
	var binds []string
	for _, m := range c.spec.Mounts {
		if m.Type == "bind" {
			binds = append(binds, m.Destination+" "+m.Source)
		}
	}
	want := []string{"/var/lib/db " + filepath.Join(srv.Dir(old), "fs", "data"), "/srv/new " + filepath.Join(srv.Dir(newID), "fs", "data")}
	if !reflect.DeepEqual(binds, want) {
		t.Errorf("binds = %q, want %q", binds, want)
	}
	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	e.assertReleased(t, "c1")
}

// lockSteps lists the locks the journal at path records, in order.
func lockSteps(t *testing.T, path string) []string {
	t.Helper()
	steps, err := journal.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	var locks []string
	for _, s := range steps {
		if s.Kind == journal.Lock {
			locks = append(locks, s.Path)
		}
	}
	return locks
}
