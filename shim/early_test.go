package shim

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-persist/containerd-persist/state"
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
