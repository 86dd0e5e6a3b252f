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
	"github.com/containerd-persist/containerd-persist/volumes"
)

// step is one thing the shim does on the start or delete path, timed on
// its own with the same packages the shim uses.
type step struct {
	Name  string
	Cases string // which cases pay for it
	fn    func(i int) error
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
	steps := []step{
		{"parse the config file", "all persist", func(int) error {
			_, err := config.Load(e.config, "", "")
			return err
		}},
		{"read the OCI spec", "all persist", func(int) error {
			_, err := oci.ReadSpec(specPath)
			return err
		}},
		{"write the OCI spec (marshal, write, rename)", "all persist", func(int) error {
			return writeJSON(specPath, spec)
		}},
		{"journal: create, 4 records, replay", "all persist", func(i int) error {
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
		{"tmpfs: mount + unmount", "imm-mem", func(int) error {
			if err := h.Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=512m", "mode=0700", "nodev", "nosuid"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{"scratch image: make 1 GiB, no journal (MakeImage)", "imm-disk", func(i int) error {
			return h.MakeImage(img(i, "scratch"), gib, false)
		}},
		{"scratch image: loop mount + unmount", "imm-disk", func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "scratch"), Options: []string{"loop", "nodev", "nosuid", "noatime"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{"scratch image: remove", "imm-disk", func(i int) error {
			return os.Remove(img(i, "scratch"))
		}},
		{"scratch image: copy a 1 GiB template (Linux.Templates set)", "imm-disk", func(i int) error {
			return templated.MakeImage(img(i, "copy"), gib, false)
		}},
		{"scratch image copy: loop mount + unmount", "imm-disk", func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "copy"), Options: []string{"loop", "nodev", "nosuid", "noatime"}}, mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{"scratch image copy: remove", "imm-disk", func(i int) error {
			return os.Remove(img(i, "copy"))
		}},
		{"volume image: make 1 GiB, journaled (new volume only)", "loopfile", func(i int) error {
			return h.MakeImage(img(i, "volume"), gib, true)
		}},
		{"volume image: loop mount + syncfs + unmount", "loopfile", func(i int) error {
			if err := h.Mount(mount.Mount{Type: "ext4", Source: img(i, "volume"), Options: []string{"loop"}}, mnt); err != nil {
				return err
			}
			if err := volumes.Syncfs(mnt); err != nil {
				return err
			}
			return h.Unmount(mnt)
		}},
		{"ask containerd for the image (dial, 2 RPCs)", "machine", func(int) error {
			return imageOf(ctx, e.address, e.o.Namespace, id)
		}},
	}
	var out []stepResult
	for _, s := range steps {
		var samples []float64
		for i := range e.o.StepRuns {
			start := time.Now()
			if err := s.fn(i); err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			samples = append(samples, ms(time.Since(start)))
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
