package shim

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/state"
)

const emptyScratch = `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/var/tmp"
size = "1MiB"
`

// A memory scratch with nothing in the image to lay over is a tmpfs that
// runc makes: nothing is mounted or made on the host for it.
func TestStorageSetupScratchWithoutContent(t *testing.T) {
	e := newSetupEnv(t)
	c := e.container("c1", nil)
	if err := e.setup(t, e.config(t, emptyScratch), c); err != nil {
		t.Fatal(err)
	}
	var got specs.Mount
	for _, m := range c.spec.Mounts {
		if m.Destination == "/var/tmp" {
			got = m
		}
	}
	// The image's /var/tmp is 0755 and owned by the test's user.
	want := []string{"size=1048576", "nr_inodes=1024", "mode=0755", "uid=" + strconv.Itoa(os.Getuid()), "gid=" + strconv.Itoa(os.Getgid()), "nodev", "nosuid"}
	if got.Type != "tmpfs" || !reflect.DeepEqual(got.Options, want) {
		t.Errorf("/var/tmp = %+v, want a tmpfs with %q", got, want)
	}
	if ops := e.host.Ops(); len(ops) != 0 {
		t.Errorf("host calls = %q, want none", ops)
	}
	if _, err := os.Lstat(state.Dir(e.state).Scratch("ns", "c1")); err == nil {
		t.Error("a scratch dir was made on the host")
	}
	// Nothing to undo: no journal, and no pointer to one.
	for _, p := range []string{state.Dir(e.state).Journal("ns", "c1"), filepath.Join(e.bundle, journalPointer)} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want none", p, err)
		}
	}
	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	e.assertReleased(t, "c1")
}

// A root that containerd passes no mounts for is the spec's root directory,
// read as the image's only layer.
func TestStorageSetupScratchRootWithoutMounts(t *testing.T) {
	e := newSetupEnv(t)
	c := e.container("c1", nil)
	c.rootfs = nil
	c.spec.Root.Path = e.layer
	if err := e.setup(t, e.config(t, twoScratch), c); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(state.Dir(e.state).Scratch("ns", "c1"), "0", "merged")
	if m := c.spec.Mounts[1]; m.Destination != "/tmp" || m.Source != merged {
		t.Errorf("/tmp = %+v, want a bind of %s", m, merged)
	}
	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	e.assertReleased(t, "c1")
}

func TestStorageSetupScratchOverSymlinkRefused(t *testing.T) {
	e := newSetupEnv(t)
	if err := os.RemoveAll(filepath.Join(e.layer, "var", "tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(e.layer, "var", "tmp")); err != nil {
		t.Fatal(err)
	}
	err := e.setup(t, e.config(t, emptyScratch), e.container("c1", nil))
	if err == nil || !strings.Contains(err.Error(), "scratch path /var/tmp is a symlink in the container's root") {
		t.Fatalf("setup = %v, want the scratch over a symlink refused", err)
	}
	if ops := e.host.Ops(); len(ops) != 0 {
		t.Errorf("host calls = %q, want none", ops)
	}
	e.assertReleased(t, "c1")
}
