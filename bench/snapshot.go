package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// The snapshot part's volume: 1 GiB, half of it written.
const (
	snapVolumeSize = 1 << 30
	snapWritten    = 512 << 20
)

// snapshotResult is the snapshot of one backend's volume.
type snapshotResult struct {
	Case   string `json:"case"`
	Title  string `json:"title"`
	Method string `json:"method"`
	// Seconds is a snapshot of the detached volume, end to end; FrozenMS
	// how long a live one froze the volume's filesystem.
	Seconds  series `json:"seconds"`
	FrozenMS series `json:"frozen_ms"`
	// UsedMiB is what one snapshot took of the backend's free space.
	UsedMiB float64 `json:"backend_used_mib"`
	Skipped string  `json:"skipped,omitempty"`
}

// snapshotCases are the backends compared: blocks shared (reflink) on an
// XFS overcommit backend, copied on an ext4 backend that reserves space.
var snapshotCases = []struct {
	name, title, fs string
	mkfs            []string
	overcommit      bool
}{
	{"reflink", "XFS (reflink=1), overcommit backend", "xfs", []string{"mkfs.xfs", "-q", "-f", "-m", "reflink=1"}, true},
	{"copy", "ext4, backend that reserves space", "ext4", []string{"mkfs.ext4", "-q", "-F"}, false},
}

// benchSnapshot times `volumes snapshot create` of a 1 GiB loopfile volume
// with 512 MiB written, detached and live, on each of snapshotCases, each
// backend a filesystem of its own on a loop-mounted image.
func benchSnapshot(ctx context.Context, e *env, r *results) error {
	runs := min(3, max(1, e.o.StepRuns))
	for _, c := range snapshotCases {
		res, err := e.snapshotCase(ctx, c.name, c.fs, c.mkfs, c.overcommit, runs)
		res.Case, res.Title = c.name, c.title
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r.Snapshot = append(r.Snapshot, res)
	}
	return nil
}

func (e *env) snapshotCase(ctx context.Context, name, fs string, mkfs []string, overcommit bool, runs int) (res snapshotResult, retErr error) {
	dir := filepath.Join(e.dir, "snapshot-"+name)
	backend, content := filepath.Join(dir, "backend"), filepath.Join(dir, "content")
	image := dir + ".img"
	for _, d := range []string{backend, content} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return res, err
		}
	}
	if err := sparseFile(image, 3*snapVolumeSize); err != nil {
		return res, err
	}
	defer os.Remove(image)
	if _, err := exec.LookPath(mkfs[0]); err != nil {
		res.Skipped = mkfs[0] + " is missing: run scripts/install-deps.sh"
		return res, nil
	}
	if out, err := exec.CommandContext(ctx, mkfs[0], append(mkfs[1:], image)...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("%s: %w: %s", mkfs[0], err, out)
	}
	lx := host.Linux{}
	var undo []func() error
	defer func() {
		for i := len(undo) - 1; i >= 0; i-- {
			retErr = errors.Join(retErr, undo[i]())
		}
	}()
	if err := lx.Mount(mount.Mount{Type: fs, Source: image, Options: []string{"loop"}}, backend); err != nil {
		return res, err
	}
	undo = append(undo, func() error { return lx.Unmount(backend) })

	s := volumes.Open(state.Dir(filepath.Join(dir, "state")).Volumes(), lx, volumes.NewLocks())
	b := volumes.Backend{Name: name, Type: volumes.Loopfile, Path: backend, Overcommit: overcommit}
	id, err := volumes.NewID(e.o.Namespace, "", "snapshot-bench")
	if err != nil {
		return res, err
	}
	h := volumes.Holder{Namespace: e.o.Namespace, Container: "bench", Since: time.Now().UTC(), PID: os.Getpid()}
	if err := s.Create(b, id, volumes.Meta{Size: snapVolumeSize}); err != nil {
		return res, err
	}
	undo = append(undo, func() error { return s.Remove(b, id, h) })
	volImage := filepath.Join(b.Dir(id), "disk.img")
	if err := lx.Mount(mount.Mount{Type: "ext4", Source: volImage, Options: []string{"loop"}}, content); err != nil {
		return res, err
	}
	err = writeData(filepath.Join(content, "data"), snapWritten)
	if uerr := lx.Unmount(content); err == nil {
		err = uerr
	}
	if err != nil {
		return res, err
	}

	var secs, frozen []float64
	for i := range runs {
		before := freeBytes(backend)
		start := time.Now()
		snap, err := s.CreateSnapshot(b, id, fmt.Sprintf("s%d", i), volumes.CopyOptions{Holder: h})
		d := time.Since(start)
		if err != nil {
			return res, err
		}
		if i == 0 {
			res.Method = snap.Method
			res.UsedMiB = float64(before-freeBytes(backend)) / (1 << 20)
		}
		secs = append(secs, d.Seconds())
		if err := s.RemoveSnapshot(b, id, snap.Name); err != nil {
			return res, err
		}
	}

	// Live: the volume mounted where the shim mounts it, and its lock
	// held as a container's.
	target := s.MountPath(id)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return res, err
	}
	if err := lx.Mount(mount.Mount{Type: "ext4", Source: volImage, Options: []string{"loop"}}, target); err != nil {
		return res, err
	}
	undo = append(undo, func() error { return errors.Join(lx.Unmount(target), os.Remove(target)) })
	locks, holder := volumes.NewLocks(), volumes.Holder{Namespace: e.o.Namespace, Container: "bench-live", Since: time.Now().UTC(), PID: os.Getpid()}
	if err := locks.Acquire(b.LockPath(id), holder, false); err != nil {
		return res, err
	}
	undo = append(undo, func() error { return locks.Release(b.LockPath(id), holder) })
	for i := range runs {
		snap, err := s.CreateSnapshot(b, id, fmt.Sprintf("live%d", i), volumes.CopyOptions{Holder: h})
		if err != nil {
			return res, err
		}
		frozen = append(frozen, float64(snap.Frozen.Microseconds())/1000)
		if err := s.RemoveSnapshot(b, id, snap.Name); err != nil {
			return res, err
		}
	}
	res.Seconds, res.FrozenMS = newSeries(secs), newSeries(frozen)
	return res, nil
}

// writeData writes n bytes of random data to a new file at path, synced.
func writeData(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(left, int64(len(buf)))]); err != nil {
			f.Close()
			return err
		}
		buf[0]++ // no two blocks alike
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freeBytes(path string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

func (r *results) printSnapshot(w io.Writer) {
	fmt.Fprintln(w, "\n## Snapshots")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "`volumes snapshot create` of a %d MiB loopfile volume with %d MiB written (page cache warm).\n\n", snapVolumeSize>>20, snapWritten>>20)
	fmt.Fprintln(w, "| backend | method | detached: seconds (median) | live: filesystem frozen, ms (median) | backend space taken, MiB |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|")
	for _, s := range r.Snapshot {
		if s.Skipped != "" {
			fmt.Fprintf(w, "| %s | — | — | — | SKIPPED: %s |\n", s.Title, s.Skipped)
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %.3f (%d runs) | %.1f | %.0f |\n", s.Title, s.Method, s.Seconds.Median, len(s.Seconds.Samples), s.FrozenMS.Median, s.UsedMiB)
	}
}
