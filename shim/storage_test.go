package shim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host/hosttest"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// setupEnv is a state dir, a backend dir, an image layer and a bundle, and
// a storage on a recording fake host.
type setupEnv struct {
	tmp, state, srv, layer, bundle string
	host                           *hosttest.Mounter
	storage                        *storage
}

// newSetupEnv makes the environment; the layer has /tmp with a file in it,
// an empty /var/tmp, /var/lib/db, and a regular file at /data.
func newSetupEnv(t *testing.T) *setupEnv {
	t.Helper()
	tmp := t.TempDir()
	e := &setupEnv{
		tmp:    tmp,
		state:  filepath.Join(tmp, "state"),
		srv:    filepath.Join(tmp, "srv"),
		layer:  filepath.Join(tmp, "layer"),
		bundle: filepath.Join(tmp, "bundle"),
		host:   &hosttest.Mounter{},
	}
	for _, d := range []string{e.srv, e.bundle, filepath.Join(e.layer, "tmp"), filepath.Join(e.layer, "var", "tmp"), filepath.Join(e.layer, "var", "lib", "db")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(e.layer, "tmp"), 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"data", "tmp/from-image"} {
		if err := os.WriteFile(filepath.Join(e.layer, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.storage = newStorage("", e.host)
	return e
}

// config parses a config whose state_dir is the env's, with a dir backend
// "srv" and the given classes; STATE and SRV in classes are replaced.
func (e *setupEnv) config(t *testing.T, classes string) *config.Config {
	t.Helper()
	text := fmt.Sprintf("version = 1\nstate_dir = %q\ndefault_class = \"c\"\n[backends.srv]\ntype = \"dir\"\npath = %q\n", e.state, e.srv)
	text += strings.NewReplacer("STATE", e.state, "SRV", e.srv).Replace(classes)
	cfg, err := config.Parse([]byte(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (e *setupEnv) container(id string, annotations map[string]string) *container {
	return &container{
		namespace: "ns",
		id:        id,
		bundle:    e.bundle,
		spec: &specs.Spec{
			Root:        &specs.Root{Path: "rootfs"},
			Annotations: annotations,
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
			},
		},
		rootfs: []mount.Mount{{Type: "bind", Source: e.layer, Options: []string{"rbind", "ro"}}},
	}
}

func (e *setupEnv) setup(t *testing.T, cfg *config.Config, c *container) error {
	t.Helper()
	class, err := resolveClass(cfg, c.spec.Annotations)
	if err != nil {
		t.Fatal(err)
	}
	e.host.Journal = state.Dir(cfg.StateDir).Journal(c.namespace, c.id)
	reserved, err := e.storage.setup(context.Background(), &setupRequest{container: c, cfg: cfg, class: class})
	if err != nil {
		return err
	}
	return reserved()
}

// assertReleased checks that nothing of container id is left in the state
// dir, and that its bundle's journal pointer leads nowhere harmful.
func (e *setupEnv) assertReleased(t *testing.T, id string) {
	t.Helper()
	d := state.Dir(e.state)
	jpath := d.Journal("ns", id)
	if _, err := os.Lstat(jpath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("journal %s left: %v", jpath, err)
	}
	if _, err := os.Lstat(d.Scratch("ns", id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scratch dir left: %v", err)
	}
	locks, _ := filepath.Glob(filepath.Join(e.srv, ".locks", "ns", "*"))
	for _, l := range locks {
		if h, _ := volumes.ReadHolder(l); h.Container == id {
			t.Errorf("lock %s still held by %s", l, id)
		}
	}
	for _, p := range e.host.Mounted() {
		t.Errorf("%s still mounted", p)
	}
	e.storage.mu.Lock()
	_, open := e.storage.live[jpath]
	e.storage.mu.Unlock()
	if open {
		t.Errorf("journal %s still held open", jpath)
	}
	// shim delete after a failed create finds the pointer, if any, and
	// has nothing left to do.
	if err := e.storage.teardownBundle(e.bundle, "ns", id); err != nil {
		t.Errorf("teardownBundle after release = %v", err)
	}
}

const twoScratch = `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.c.scratch]]
path = "/var/tmp"
medium = "disk"
size = "2MiB"
`

func TestStorageSetupScratch(t *testing.T) {
	e := newSetupEnv(t)
	cfg := e.config(t, twoScratch)
	c := e.container("c1", nil)
	if err := e.setup(t, cfg, c); err != nil {
		t.Fatal(err)
	}
	d := state.Dir(e.state)
	jpath, scratch := d.Journal("ns", "c1"), d.Scratch("ns", "c1")
	s0, s1 := filepath.Join(scratch, "0"), filepath.Join(scratch, "1", "fs") // s1: the disk scratch's filesystem

	if !c.spec.Root.Readonly {
		t.Error("immutable root not read-only")
	}
	var dests []string
	for _, m := range c.spec.Mounts {
		dests = append(dests, m.Destination+" "+m.Type)
	}
	// The class decides what is at its paths: the spec's /tmp is replaced.
	// /tmp is laid over the image's on the host; /var/tmp has nothing to
	// lay over, so the container gets its disk's upper directory.
	if want := []string{"/proc proc", "/tmp bind", "/var/tmp bind"}; !reflect.DeepEqual(dests, want) {
		t.Errorf("mounts = %q, want %q", dests, want)
	}
	for i, src := range []string{filepath.Join(s0, "merged"), filepath.Join(s1, "upper")} {
		if got := c.spec.Mounts[i+1].Source; got != src {
			t.Errorf("%s is a bind of %s, want %s", c.spec.Mounts[i+1].Destination, got, src)
		}
	}
	want := []string{"mount " + s0, "mount " + s0 + "/merged", "makeimage " + s1 + ".img", "mount " + s1}
	if got := e.host.Ops(); !reflect.DeepEqual(got, want) {
		t.Errorf("host calls = %q, want %q", got, want)
	}
	// The scratch dir itself is journaled before the first mount in it.
	first := e.host.Calls[0].Steps
	if len(first) < 2 || first[0] != (journal.Step{Kind: journal.Dir, Path: scratch}) || first[len(first)-1] != (journal.Step{Kind: journal.Mount, Path: s0}) {
		t.Errorf("journal at the first mount = %v", first)
	}
	if b, err := os.ReadFile(filepath.Join(e.bundle, journalPointer)); err != nil || string(b) != jpath {
		t.Errorf("journal pointer = %q, %v; want %q", b, err, jpath)
	}
	if !journal.InUse(jpath) {
		t.Error("a live container's journal is not held")
	}
	// While it lives, a cleanup of its ID leaves it alone.
	if err := e.storage.undoer(volumes.Holder{Namespace: "ns", Container: "c1"}).Release(jpath); !errors.Is(err, journal.ErrInUse) {
		t.Errorf("Release of a live journal = %v, want ErrInUse", err)
	}

	e.host.Calls = nil
	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	if got, want := e.host.Ops(), []string{"unmount " + s1, "unmount " + s0 + "/merged", "unmount " + s0}; !reflect.DeepEqual(got, want) {
		t.Errorf("teardown calls = %q, want %q", got, want)
	}
	e.assertReleased(t, "c1")
}

// TestStorageSetupFails fails setup at its second scratch area or its volume
// and checks that everything the first did is undone.
func TestStorageSetupFails(t *testing.T) {
	tests := []struct {
		name      string
		classes   string
		failAt    int
		wantErr   []string
		wantCalls func(scratch string) []string
	}{
		{
			name: "second scratch path is a file in the image",
			classes: `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.c.scratch]]
path = "/data"
size = "1MiB"
`,
			wantErr: []string{"scratch /data", "not a directory in the image"},
			wantCalls: func(s string) []string {
				return []string{"mount " + s + "/0", "mount " + s + "/0/merged", "unmount " + s + "/0/merged", "unmount " + s + "/0"}
			},
		},
		{
			name:    "second scratch image fails",
			classes: twoScratch,
			failAt:  3,
			wantErr: []string{"scratch /var/tmp", "injected"},
			wantCalls: func(s string) []string {
				// The disk scratch's mount is journaled before its image is made.
				return []string{"mount " + s + "/0", "mount " + s + "/0/merged", "makeimage " + s + "/1/fs.img", "unmount " + s + "/1/fs", "unmount " + s + "/0/merged", "unmount " + s + "/0"}
			},
		},
		{
			name:    "second scratch mount fails",
			classes: twoScratch,
			failAt:  4,
			wantErr: []string{"scratch /var/tmp", "injected"},
			wantCalls: func(s string) []string {
				return []string{"mount " + s + "/0", "mount " + s + "/0/merged", "makeimage " + s + "/1/fs.img", "mount " + s + "/1/fs",
					"unmount " + s + "/1/fs", "unmount " + s + "/0/merged", "unmount " + s + "/0"}
			},
		},
		{
			name: "volume backend missing",
			classes: `
[backends.gone]
type = "dir"
path = "SRV-not-mounted"
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.c.volumes]]
path = "/var/lib/db"
backend = "gone"
name = "{name}-data"
`,
			wantErr:   []string{"attach volume c1-data", "does not exist", "create it"},
			wantCalls: func(string) []string { return nil }, // volumes come first
		},
		{
			name: "volume name template without a value",
			classes: `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.c.volumes]]
path = "/var/lib/db"
backend = "srv"
name = "{k8s.pod}-data"
`,
			wantErr:   []string{`"{k8s.pod}-data"`, "class c", "{k8s.pod} has no value"},
			wantCalls: func(string) []string { return nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSetupEnv(t)
			e.host.FailAt = tt.failAt
			cfg := e.config(t, tt.classes)
			err := e.setup(t, cfg, e.container("c1", nil))
			if err == nil {
				t.Fatal("setup succeeded")
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if got, want := e.host.Ops(), tt.wantCalls(state.Dir(e.state).Scratch("ns", "c1")); !reflect.DeepEqual(got, want) {
				t.Errorf("host calls =\n %q\nwant\n %q", got, want)
			}
			e.assertReleased(t, "c1")
		})
	}
}

const dbClass = `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/tmp"
size = "1MiB"
[[classes.c.volumes]]
path = "/var/lib/db"
backend = "srv"
name = "{name}-data"
`

func TestStorageSetupVolume(t *testing.T) {
	e := newSetupEnv(t)
	// The image's directory gives the volume's data dir its owner.
	if err := os.Chmod(filepath.Join(e.layer, "var", "lib", "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(t, dbClass)
	c1 := e.container("c1", map[string]string{AnnotationName: "pg"})
	if err := e.setup(t, cfg, c1); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(e.srv, "ns", "pg-data")
	data := filepath.Join(vol, "fs", "data")
	i := slices.IndexFunc(c1.spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/var/lib/db" })
	if i < 0 {
		t.Fatalf("no mount at /var/lib/db in %+v", c1.spec.Mounts)
	}
	if m := c1.spec.Mounts[i]; m.Type != "bind" || m.Source != data || !reflect.DeepEqual(m.Options, []string{"rbind", "rw"}) {
		t.Errorf("volume mount = %+v, want a bind of %s", m, data)
	}
	if fi, err := os.Lstat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir = %v, %v; want mode 0700 from the image", fi, err)
	}
	lock := filepath.Join(e.srv, ".locks", "ns", "pg-data")
	if h, ok := volumes.ReadHolder(lock); !ok || h.Container != "c1" || h.Namespace != "ns" || h.PID != os.Getpid() {
		t.Errorf("lock holder = %+v, %v; want c1 of this shim", h, ok)
	}

	// A second container, in another shim, asking for the same volume
	// fails and is undone; the first keeps its lock.
	e.host.Calls = nil
	c2 := e.container("c2", map[string]string{AnnotationName: "pg"})
	c2.bundle = filepath.Join(e.tmp, "bundle2")
	if err := os.Mkdir(c2.bundle, 0o700); err != nil {
		t.Fatal(err)
	}
	first := e.storage
	e.storage = newStorage("", e.host)
	err := e.setup(t, cfg, c2)
	e.storage = first
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "container c1") {
		t.Fatalf("second setup = %v, want FailedPrecondition naming c1", err)
	}
	if got := e.host.Ops(); len(got) != 0 {
		t.Errorf("second setup calls = %q, want none: volumes come first", got)
	}
	if _, err := os.Lstat(state.Dir(e.state).Journal("ns", "c2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("c2's journal left: %v", err)
	}
	if h, ok := volumes.ReadHolder(lock); !ok || h.Container != "c1" {
		t.Errorf("after c2 failed, lock holder = %+v, %v; want c1", h, ok)
	}

	if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
		t.Fatal(err)
	}
	e.assertReleased(t, "c1")
	if _, err := os.Lstat(lock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("lock file left: %v", err)
	}
	// The volume outlives its container.
	if _, err := os.Stat(filepath.Join(data)); err != nil {
		t.Errorf("volume data gone with its container: %v", err)
	}
}

// TestStorageSetupVolumeHeldBySibling covers a shim serving a pod: a
// container asking for a volume its sibling holds fails, and undoing its
// setup leaves the sibling's hold alone.
func TestStorageSetupVolumeHeldBySibling(t *testing.T) {
	e := newSetupEnv(t)
	cfg := e.config(t, dbClass)
	if err := e.setup(t, cfg, e.container("c1", map[string]string{AnnotationName: "pg"})); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(e.srv, ".locks", "ns", "pg-data")
	for _, id := range []string{"c2", "c3"} {
		c := e.container(id, map[string]string{AnnotationName: "pg"})
		c.bundle = filepath.Join(e.tmp, "bundle-"+id)
		if err := os.Mkdir(c.bundle, 0o700); err != nil {
			t.Fatal(err)
		}
		if id == "c3" {
			e.storage = newStorage("", e.host) // another shim
		}
		err := e.setup(t, cfg, c)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "container c1") {
			t.Fatalf("setup of %s = %v, want FailedPrecondition naming c1", id, err)
		}
		if h, ok := volumes.ReadHolder(lock); !ok || h.Container != "c1" {
			t.Fatalf("after %s failed, lock holder = %+v, %v; want c1", id, h, ok)
		}
	}
}

// A journal left by an earlier container of the same ID is undone first,
// also for a class that puts nothing on the host and makes no journal.
func TestStorageSetupLeftoverJournal(t *testing.T) {
	for name, class := range map[string]string{"on the host": twoScratch, "nothing on the host": emptyScratch} {
		t.Run(name, func(t *testing.T) {
			e := newSetupEnv(t)
			cfg := e.config(t, class)
			jpath := state.Dir(e.state).Journal("ns", "c1")
			stale := filepath.Join(e.tmp, "stale-mount")

			// A shim killed during an earlier container of this ID left its journal.
			j, err := journal.Create(jpath)
			if err != nil {
				t.Fatal(err)
			}
			if err := j.Record(journal.Step{Kind: journal.Mount, Path: stale}); err != nil {
				t.Fatal(err)
			}
			j.Close()
			if err := e.setup(t, cfg, e.container("c1", nil)); err != nil {
				t.Fatal(err)
			}
			if got := e.host.Ops(); len(got) == 0 || got[0] != "unmount "+stale {
				t.Errorf("host calls = %q, want the leftover undone first", got)
			}
			if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
				t.Fatal(err)
			}
			e.assertReleased(t, "c1")
		})
	}
}

func TestStorageSetupLiveJournal(t *testing.T) {
	e := newSetupEnv(t)
	cfg := e.config(t, twoScratch)
	jpath := state.Dir(e.state).Journal("ns", "c1")
	// Another shim's container of this ID still lives.
	j, err := journal.Create(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	err = e.setup(t, cfg, e.container("c1", nil))
	if !errors.Is(err, journal.ErrInUse) || !strings.Contains(err.Error(), "persistctl gc") {
		t.Fatalf("setup = %v, want ErrInUse saying to run persistctl gc", err)
	}
	if len(e.host.Calls) != 0 {
		t.Errorf("host calls = %q, want none", e.host.Ops())
	}
	if !journal.InUse(jpath) {
		t.Error("the live container's journal was taken")
	}
	// Its bundle's pointer was not written: a delete of this failed create
	// must not release the live container's storage.
	if _, err := os.Lstat(filepath.Join(e.bundle, journalPointer)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("journal pointer written: %v", err)
	}
}

func TestStorageSetupNoRoot(t *testing.T) {
	e := newSetupEnv(t)
	cfg := e.config(t, twoScratch)
	c := e.container("c1", nil)
	c.spec.Root = nil
	if err := e.setup(t, cfg, c); err == nil || !strings.Contains(err.Error(), "no root") {
		t.Fatalf("setup = %v, want an error about the missing root", err)
	}
	if len(e.host.Calls) != 0 {
		t.Errorf("host calls = %q, want none", e.host.Ops())
	}
	e.assertReleased(t, "c1")
}

func TestAddMount(t *testing.T) {
	overlayAt := func(dest string) specs.Mount {
		return specs.Mount{Destination: dest, Type: "overlay", Source: "overlay"}
	}
	tests := []struct {
		name   string
		mounts []specs.Mount
		add    specs.Mount
		want   []string // destination and type
	}{
		{
			name:   "new destination appended",
			mounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/dev", Type: "tmpfs"}},
			add:    overlayAt("/tmp"),
			want:   []string{"/proc proc", "/dev tmpfs", "/tmp overlay"},
		},
		{
			name:   "same destination replaced",
			mounts: []specs.Mount{{Destination: "/proc", Type: "proc"}, {Destination: "/tmp", Type: "tmpfs"}, {Destination: "/dev", Type: "tmpfs"}},
			add:    overlayAt("/tmp"),
			want:   []string{"/proc proc", "/dev tmpfs", "/tmp overlay"},
		},
		{
			name:   "unclean destination replaced",
			mounts: []specs.Mount{{Destination: "/tmp/", Type: "tmpfs"}, {Destination: "//tmp", Type: "bind"}},
			add:    overlayAt("/tmp"),
			want:   []string{"/tmp overlay"},
		},
		{
			name: "no mounts",
			add:  overlayAt("/tmp"),
			want: []string{"/tmp overlay"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := &specs.Spec{Mounts: tt.mounts}
			addMount(spec, tt.add)
			var got []string
			for _, m := range spec.Mounts {
				got = append(got, m.Destination+" "+m.Type)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mounts = %q, want %q", got, tt.want)
			}
		})
	}
}
