package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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

// benchSteps times the shim's setup steps one by one, to show where the
// time of a case that misses its budget goes.
func benchSteps(ctx context.Context, e *env, r *results) error {
	dir := filepath.Join(e.dir, "steps")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer unmountUnder(dir)

	// A real container's spec and snapshot, for the spec and image steps.
	const id = "steps"
	ctn, err := e.newContainer(ctx, caseNamed("machine-dir"), id, "steps", nil, "true")
	if err != nil {
		return err
	}
	defer deleteContainer(context.WithoutCancel(ctx), ctn)
	spec, err := ctn.Spec(ctx)
	if err != nil {
		return err
	}
	specPath := filepath.Join(dir, "config.json")
	if err := writeJSON(specPath, spec); err != nil {
		return err
	}

	h := host.Linux{}
	const gib = 1 << 30
	// The template is made once per size; copies are what a start pays.
	templated := host.Linux{Templates: filepath.Join(dir, "templates")}
	if err := templated.MakeImage(filepath.Join(dir, "first.img"), gib, false); err != nil {
		return err
	}
	img := func(i int, kind string) string { return filepath.Join(dir, fmt.Sprintf("%s-%d.img", kind, i)) }
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return err
	}
	dirBackend := volumes.Backend{Name: "dir", Type: volumes.Dir, Path: filepath.Join(dir, "vol-dir")}
	loopBackend := volumes.Backend{Name: "loop", Type: volumes.Loopfile, Path: filepath.Join(dir, "vol-loop")}
	vols := &volumeSteps{stateDir: filepath.Join(dir, "state"), locks: volumes.NewLocks(), m: h}
	for _, d := range []string{dirBackend.Path, loopBackend.Path} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	for _, b := range []volumes.Backend{dirBackend, loopBackend} { // made once, reattached when timed
		if err := vols.attach(b); err != nil {
			return err
		}
		if err := vols.release(0); err != nil {
			return err
		}
	}

	steps := []step{
		{Name: "parse the config file", Cases: "all persist", fn: func(int) error {
			_, err := config.Load(e.config, "", "")
			return err
		}},
		{Name: "read the OCI spec", Cases: "all persist", fn: func(int) error {
			_, err := oci.ReadSpec(specPath)
			return err
		}},
		{Name: "write the OCI spec (marshal, write, rename)", Cases: "all persist", fn: func(int) error {
			return writeJSON(specPath, spec)
		}},
		{Name: "journal: create, 4 records, replay", Cases: "all persist", fn: func(i int) error {
			p := filepath.Join(dir, "journal", fmt.Sprint(i))
			j, err := journal.Create(p)
			if err != nil {
				return err
			}
			for range 4 {
				if err := j.Record(journal.Step{Kind: journal.Dir, Path: filepath.Join(dir, "none")}); err != nil {
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
		{Name: "scratch image: make 1 GiB, no journal (MakeImage)", Cases: "imm-disk", fn: func(i int) error {
			return h.MakeImage(img(i, "scratch"), gib, false)
		}},
		{Name: "scratch image: loop mount + unmount", Cases: "imm-disk", fn: func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "scratch"), Options: []string{"loop", "nodev", "nosuid", "noatime"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{Name: "scratch image: remove", Cases: "imm-disk", fn: func(i int) error {
			return os.Remove(img(i, "scratch"))
		}},
		{Name: "scratch image: copy a 1 GiB template (Linux.Templates set)", Cases: "imm-disk", fn: func(i int) error {
			return templated.MakeImage(img(i, "copy"), gib, false)
		}},
		{Name: "scratch image copy: loop mount + unmount", Cases: "imm-disk", fn: func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "copy"), Options: []string{"loop", "nodev", "nosuid", "noatime"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{Name: "scratch image copy: remove", Cases: "imm-disk", fn: func(i int) error {
			return os.Remove(img(i, "copy"))
		}},
		{Name: "volume image: make 1 GiB, journaled (new volume only)", Cases: "loopfile", fn: func(i int) error {
			return h.MakeImage(img(i, "volume"), gib, true)
		}},
		{Name: "volume image: loop mount + syncfs + unmount", Cases: "loopfile", fn: func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "volume"), Options: []string{"loop"}}, mnt); err != nil {
				return err
			}
			if err := volumes.Syncfs(mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{Name: "ask containerd for the image (dial, 2 RPCs)", Cases: "machine", fn: func(int) error {
			return imageOf(ctx, e.address, e.o.Namespace, id)
		}},
		{Name: "dir volume: attach (lock, metadata, upper and work dirs)", Cases: "machine-dir",
			fn: func(int) error { return vols.attach(dirBackend) }, after: vols.release},
		{Name: "dir volume: release (syncfs of the backend's filesystem, unlock)", Cases: "machine-dir",
			before: func(int) error { return vols.attach(dirBackend) }, fn: vols.release},
		{Name: "loopfile volume: attach (lock, metadata, loop mount, dirs)", Cases: "loopfile",
			fn: func(int) error { return vols.attach(loopBackend) }, after: vols.release},
		{Name: "loopfile volume: release (syncfs, unmount, unlock)", Cases: "loopfile",
			before: func(int) error { return vols.attach(loopBackend) }, fn: vols.release},
	}
	var out []stepResult
	for _, s := range steps {
		var samples []float64
		for i := range e.o.StepRuns {
			if s.before != nil {
				if err := s.before(i); err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
			}
			start := time.Now()
			if err := s.fn(i); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			samples = append(samples, ms(time.Since(start)))
			if s.after != nil {
				if err := s.after(i); err != nil {
					return fmt.Errorf("%s: %w", s.Name, err)
				}
			}
		}
		out = append(out, stepResult{Name: s.Name, Cases: s.Cases, MS: samples})
	}
	r.setSteps(out)
	return nil
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
	a, err := volumes.Open(v.stateDir, v.m, v.locks).Attach(j, volumes.AttachOptions{
		Namespace: "steps", Name: "steps-" + b.Name, Backend: b, Size: 1 << 30, Class: "steps", Holder: v.holder(),
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
