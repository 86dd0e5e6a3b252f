package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// step is one thing the shim does on the start or delete path, timed on
// its own with the same packages the shim uses.
type step struct {
	Name  string
	Cases string // which cases pay for it
	fn    func(i int) error
	// before and after, when set, run untimed around each run of fn.
	before, after func(i int) error
}

// stepEnv is what the steps work on. The parent makes it; a child process
// that times cold steps gets it as JSON and works in a directory of its own
// beside the parent's, on the parent's template, volumes and container.
type stepEnv struct {
	Dir       string // this process's images and mountpoint
	Shared    string // templates, state dir and backends, made by the parent
	Config    string
	Spec      string // a real container's config.json
	Address   string
	Namespace string
	ID        string // the container, for the image lookup
}

const gib = 1 << 30

// steps lists the shim's setup and teardown steps in the order a Create and
// a Delete take them.
func (se stepEnv) steps(ctx context.Context) ([]step, error) {
	spec, err := oci.ReadSpec(se.Spec)
	if err != nil {
		return nil, err
	}
	h := host.Linux{}
	templated := host.Linux{Templates: filepath.Join(se.Shared, "templates")}
	img := func(i int, kind string) string { return filepath.Join(se.Dir, fmt.Sprintf("%s-%d.img", kind, i)) }
	mnt := filepath.Join(se.Dir, "mnt")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return nil, err
	}
	dirBackend, loopBackend := se.backends()
	vols := &volumeSteps{stateDir: filepath.Join(se.Shared, "state"), locks: volumes.NewLocks(), m: h}
	loopMount := func(kind string, opts ...string) func(int) error {
		return func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, kind), Options: append([]string{"loop"}, opts...)}, mnt); err != nil {
				return err
			}
			if err := volumes.Syncfs(mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}
	}
	return []step{
		{Name: "parse the config file", Cases: "all persist", fn: func(int) error {
			_, err := config.Load(se.Config, "", "")
			return err
		}},
		{Name: "read the OCI spec", Cases: "all persist", fn: func(int) error {
			_, err := oci.ReadSpec(se.Spec)
			return err
		}},
		{Name: "journal: create, 4 records, replay", Cases: "all persist", fn: func(i int) error {
			p := filepath.Join(se.Dir, "journal", fmt.Sprint(i))
			j, err := journal.Create(p)
			if err != nil {
				return err
			}
			for range 4 {
				if err := j.Record(journal.Step{Kind: journal.Dir, Path: filepath.Join(se.Dir, "none")}); err != nil {
					return err
				}
			}
			j.Close()
			return journal.Replay(p, noopUndoer{})
		}},
		{Name: "tmpfs: mount + unmount", Cases: "imm-mem", fn: func(int) error {
			if err := h.Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=512m", "mode=0700", "nodev", "nosuid"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{Name: "scratch image: mkfs 1 GiB, no journal", Cases: "imm-disk", fn: func(i int) error {
			return h.MakeImage(img(i, "scratch"), gib, host.ImageOptions{})
		}},
		{Name: "scratch image: loop mount + syncfs + unmount", Cases: "imm-disk", fn: loopMount("scratch", "nodev", "nosuid", "noatime")},
		{Name: "scratch image: remove", Cases: "imm-disk", fn: func(i int) error {
			return os.Remove(img(i, "scratch"))
		}},
		{Name: "scratch image: copy a template (Linux.Templates set)", Cases: "imm-disk", fn: func(i int) error {
			return templated.MakeImage(img(i, "copy"), gib, host.ImageOptions{})
		}},
		{Name: "template copy: loop mount + syncfs + unmount", Cases: "imm-disk", fn: loopMount("copy", "nodev", "nosuid", "noatime")},
		{Name: "template copy: remove", Cases: "imm-disk", fn: func(i int) error {
			return os.Remove(img(i, "copy"))
		}},
		{Name: "volume image: mkfs 1 GiB, journaled (new volume only)", Cases: "loopfile", fn: func(i int) error {
			return h.MakeImage(img(i, "volume"), gib, host.ImageOptions{Journaled: true})
		}},
		{Name: "ask containerd for the image (dial, 2 RPCs)", Cases: "machine", fn: func(int) error {
			return imageOf(ctx, se.Address, se.Namespace, se.ID)
		}},
		{Name: "dir volume: attach (lock, metadata, upper and work dirs)", Cases: "machine-dir",
			fn: func(int) error { return vols.attach(dirBackend) }, after: vols.release},
		{Name: "dir volume: release (syncfs of the backend's filesystem, unlock)", Cases: "machine-dir",
			before: func(int) error { return vols.attach(dirBackend) }, fn: vols.release},
		{Name: "loopfile volume: attach (lock, metadata, loop mount, dirs)", Cases: "loopfile",
			fn: func(int) error { return vols.attach(loopBackend) }, after: vols.release},
		{Name: "loopfile volume: release (syncfs, unmount, unlock)", Cases: "loopfile",
			before: func(int) error { return vols.attach(loopBackend) }, fn: vols.release},
		{Name: "write the OCI spec (marshal, write, rename)", Cases: "all persist", fn: func(int) error {
			return writeJSON(filepath.Join(se.Dir, "config.json"), spec)
		}},
	}, nil
}

func (se stepEnv) backends() (dir, loop volumes.Backend) {
	return volumes.Backend{Name: "dir", Type: volumes.Dir, Path: filepath.Join(se.Shared, "vol-dir")},
		volumes.Backend{Name: "loop", Type: volumes.Loopfile, Path: filepath.Join(se.Shared, "vol-loop")}
}

// run times each step runs times, runs in a row, the first as it comes.
func (s step) run(runs int) ([]float64, error) {
	var samples []float64
	for i := range runs {
		if s.before != nil {
			if err := s.before(i); err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
		}
		start := time.Now()
		if err := s.fn(i); err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		samples = append(samples, ms(time.Since(start)))
		if s.after != nil {
			if err := s.after(i); err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
		}
	}
	return samples, nil
}

// benchSteps times the shim's setup steps one by one, to show where the
// time of a case that misses its budget goes: warm, run after run in this
// process, and cold, once each in a fresh process, as a shim (one process
// per container) meets them.
func benchSteps(ctx context.Context, e *env, r *results) error {
	shared := filepath.Join(e.dir, "steps")
	se := stepEnv{Dir: filepath.Join(shared, "warm"), Shared: shared, Config: e.config,
		Spec: filepath.Join(shared, "config.json"), Address: e.address, Namespace: e.o.Namespace, ID: "steps"}
	if err := os.MkdirAll(se.Dir, 0o700); err != nil {
		return err
	}
	defer unmountUnder(shared)

	// A real container's spec and snapshot, for the spec and image steps.
	ctn, err := e.newContainer(ctx, caseNamed("machine-dir"), se.ID, "steps", nil, "true")
	if err != nil {
		return err
	}
	defer deleteContainer(context.WithoutCancel(ctx), ctn)
	spec, err := ctn.Spec(ctx)
	if err != nil {
		return err
	}
	if err := writeJSON(se.Spec, spec); err != nil {
		return err
	}
	// The template and the volumes are made once; the steps copy and
	// reattach them, as starts do.
	if err := (host.Linux{Templates: filepath.Join(shared, "templates")}).MakeImage(filepath.Join(shared, "first.img"), gib, host.ImageOptions{}); err != nil {
		return err
	}
	dirBackend, loopBackend := se.backends()
	vols := &volumeSteps{stateDir: filepath.Join(shared, "state"), locks: volumes.NewLocks(), m: host.Linux{}}
	for _, b := range []volumes.Backend{dirBackend, loopBackend} {
		if err := os.Mkdir(b.Path, 0o700); err != nil {
			return err
		}
		if err := vols.attach(b); err != nil {
			return err
		}
		if err := vols.release(0); err != nil {
			return err
		}
	}

	steps, err := se.steps(ctx)
	if err != nil {
		return err
	}
	out := make([]stepResult, len(steps))
	for i, s := range steps {
		samples, err := s.run(e.o.StepRuns)
		if err != nil {
			return err
		}
		out[i] = stepResult{Name: s.Name, Cases: s.Cases, MS: samples}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for n := range e.o.StepRuns {
		child := se
		child.Dir = filepath.Join(shared, fmt.Sprintf("cold-%d", n))
		b, _ := json.Marshal(child)
		cmd := exec.CommandContext(ctx, self)
		cmd.Env = append(os.Environ(), coldStepsEnv+"="+string(b))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		res, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("cold steps: %v: %s", err, stderr.String())
		}
		var cold []float64
		if err := json.Unmarshal(res, &cold); err != nil || len(cold) != len(out) {
			return fmt.Errorf("cold steps printed %q: %v", res, err)
		}
		for i := range out {
			out[i].ColdMS = append(out[i].ColdMS, cold[i])
		}
	}
	r.setSteps(out)
	return nil
}

const coldStepsEnv = "PERSIST_BENCH_COLD_STEPS"

// coldSteps runs each step once in this fresh process and prints the
// times as JSON.
func coldSteps(spec string) error {
	var se stepEnv
	if err := json.Unmarshal([]byte(spec), &se); err != nil {
		return err
	}
	steps, err := se.steps(context.Background())
	if err != nil {
		return err
	}
	var times []float64
	for _, s := range steps {
		samples, err := s.run(1)
		if err != nil {
			return err
		}
		times = append(times, samples[0])
	}
	return json.NewEncoder(os.Stdout).Encode(times)
}

// imageOf does what the shim does to learn a machine container's image:
// a fresh connection, the container, then its snapshot.
func imageOf(ctx context.Context, address, ns, id string) error {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = namespaces.WithNamespace(ctx, ns)
	got, err := containersapi.NewContainersClient(conn).Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return err
	}
	c := got.GetContainer()
	_, err = snapshotsapi.NewSnapshotsClient(conn).Stat(ctx, &snapshotsapi.StatSnapshotRequest{Snapshotter: c.GetSnapshotter(), Key: c.GetSnapshotKey()})
	return err
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type noopUndoer struct{}

func (noopUndoer) Unmount(string) error { return nil }
func (noopUndoer) Unlock(string) error  { return nil }
func (noopUndoer) Sync(string) error    { return nil }

// volumeSteps attaches and releases a volume as the shim does, through a
// journal.
type volumeSteps struct {
	stateDir string
	locks    *volumes.Locks
	m        host.Mounter
	j        *journal.Journal
}

func (v *volumeSteps) holder() volumes.Holder {
	return volumes.Holder{Namespace: "steps", Container: "steps", Since: time.Now().UTC(), PID: os.Getpid()}
}

func (v *volumeSteps) attach(b volumes.Backend) error {
	j, err := journal.Create(state.Dir(v.stateDir).Journal("steps", "steps"))
	if err != nil {
		return err
	}
	v.j = j
	id, err := volumes.NewID("steps", "", "steps-"+b.Name)
	if err != nil {
		return err
	}
	a, err := volumes.Open(v.stateDir, v.m, v.locks).Attach(j, volumes.AttachOptions{
		ID: id, Backend: b, Size: 1 << 30, Class: "steps", Holder: v.holder(),
	})
	if err != nil {
		return err
	}
	if _, err := a.Subdir("upper", overlay.Owner{Mode: 0o755}); err != nil {
		return err
	}
	_, err = a.Subdir("work", overlay.Owner{Mode: 0o700})
	return err
}

func (v *volumeSteps) release(int) error {
	v.j.Close()
	u := state.Undoer{Mounter: v.m, Locks: v.locks, Holder: v.holder()}
	return u.Release(v.j.Path())
}
