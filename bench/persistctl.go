package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// lsRuns is how often `volumes ls` is timed; it changes nothing, so the
// median of a few runs is cheap.
const lsRuns = 5

// benchPersistctl times `persistctl volumes ls` over a fixture of many
// volumes and `persistctl gc` over the leftovers of many killed shims. Each
// fixture has its own config and state dir, apart from the other parts'.
func benchPersistctl(ctx context.Context, e *env, r *results) error {
	ls, err := e.benchLs(ctx)
	if err != nil {
		return err
	}
	gc, err := e.benchGC(ctx)
	if err != nil {
		return err
	}
	r.setPersistctl(ls, gc)
	return nil
}

// fixture is the bench's config (see shimConfig) with its state dir and
// backends in dir.
type fixture struct {
	dir, config, stateDir   string
	dirBackend, loopBackend volumes.Backend
}

func newFixture(dir string) (fixture, error) {
	f := fixture{
		dir:         dir,
		config:      filepath.Join(dir, "persist.toml"),
		stateDir:    filepath.Join(dir, "state"),
		dirBackend:  volumes.Backend{Name: "dir", Type: volumes.Dir, Path: filepath.Join(dir, "vol-dir")},
		loopBackend: volumes.Backend{Name: "loop", Type: volumes.Loopfile, Path: filepath.Join(dir, "vol-loop")},
	}
	for _, d := range []string{f.stateDir, f.dirBackend.Path, f.loopBackend.Path} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return f, err
		}
	}
	return f, os.WriteFile(f.config, []byte(shimConfig(dir)), 0o600)
}

func (f fixture) persistctl(ctx context.Context, bin, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(bin, "persistctl"), append([]string{"--config", f.config, "-n", ns}, args...)...)
}

type lsResult struct {
	Volumes int       `json:"volumes"`
	Seconds []float64 `json:"seconds,omitempty"`
	// Scrape is persistctl metrics over the same volumes.
	Scrape  []float64 `json:"scrape_seconds,omitempty"`
	Skipped string    `json:"skipped,omitempty"`
}

// benchLs makes e.o.Volumes volumes the way the store writes them (one in
// ten a loopfile volume with a sparse image) and times listing them.
func (e *env) benchLs(ctx context.Context) (lsResult, error) {
	res := lsResult{Volumes: e.o.Volumes}
	f, err := newFixture(filepath.Join(e.dir, "fixture-ls"))
	if err != nil {
		return res, err
	}
	created := time.Now().UTC()
	for i := range e.o.Volumes {
		b := f.dirBackend
		if i%10 == 9 {
			b = f.loopBackend
		}
		m := volumes.Meta{Name: fmt.Sprintf("vol-%05d", i), Namespace: e.o.Namespace, Backend: b.Name, Type: b.Type, Created: created, Class: "mem"}
		id, err := volumes.NewID(m.Namespace, "", m.Name)
		if err != nil {
			return res, err
		}
		dir := b.Dir(id)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return res, err
		}
		if b.Type == volumes.Loopfile {
			m.Size = 1 << 30
			if err := sparseFile(filepath.Join(dir, "disk.img"), int64(m.Size)); err != nil {
				return res, err
			}
		} else if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
			return res, err
		}
		if err := volumes.WriteMeta(dir, m); err != nil {
			return res, err
		}
	}
	for i := range lsRuns {
		var out bytes.Buffer
		cmd := f.persistctl(ctx, e.o.Bin, e.o.Namespace, "volumes", "ls")
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil && i == 0 {
			res.Skipped = "persistctl volumes ls failed: " + firstLine(out.String())
			return res, nil
		}
		if err != nil {
			return res, fmt.Errorf("persistctl volumes ls: %v: %s", err, out.String())
		}
		if n := strings.Count(out.String(), "vol-"); n < e.o.Volumes {
			return res, fmt.Errorf("persistctl volumes ls listed %d of %d volumes", n, e.o.Volumes)
		}
		res.Seconds = append(res.Seconds, d.Seconds())
	}
	// The metrics scrape reads the same volumes, and each one's figures:
	// the first scrape walks the dir volumes, later ones use its cache, as
	// a Prometheus server's scrapes would.
	for i := range lsRuns + 1 {
		var out bytes.Buffer
		cmd := f.persistctl(ctx, e.o.Bin, e.o.Namespace, "metrics")
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return res, fmt.Errorf("persistctl metrics: %v: %s", err, firstLine(out.String()))
		}
		if i > 0 {
			res.Scrape = append(res.Scrape, time.Since(start).Seconds())
		}
	}
	return res, nil
}

type gcResult struct {
	Leftovers int     `json:"leftovers"` // containers whose shims were killed
	Volumes   int     `json:"volumes"`   // of them with a volume
	Seconds   float64 `json:"seconds,omitempty"`
	Remaining int     `json:"remaining"` // journals and mounts gc left
	Skipped   string  `json:"skipped,omitempty"`
}

// benchGC leaves the storage of e.o.Leftovers containers behind for
// persistctl gc, as a crash of the whole container stack would: the real
// shim sets them up, then containerd is stopped and every shim and
// container process is killed with SIGKILL. It times one gc, which
// destroys its fixture, then starts containerd again, which cleans up its
// own part (bundles, runc state) through the shim.
func (e *env) benchGC(ctx context.Context) (res gcResult, retErr error) {
	res = gcResult{Leftovers: e.o.Leftovers}
	f, err := newFixture(filepath.Join(e.dir, "fixture-gc"))
	if err != nil {
		return res, err
	}
	var inits, shims []int
	for i := range e.o.Leftovers {
		c := startCase{Name: "gc", Class: "mem", config: f.config}
		volume := ""
		if i%10 == 0 {
			c.Class, volume = "mem-volume", fmt.Sprintf("gc-%05d", i)
			res.Volumes++
		}
		init, shim, err := e.startSleeping(ctx, c, fmt.Sprintf("gc-%05d", i), volume)
		if err != nil {
			return res, err
		}
		inits, shims = append(inits, init), append(shims, shim)
	}
	if err := e.daemon.Stop(); err != nil {
		return res, err
	}
	defer func() {
		if err := e.daemon.Start(); err != nil && retErr == nil {
			retErr = err
		}
	}()
	for _, pid := range append(inits, shims...) {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			return res, fmt.Errorf("kill %d: %w", pid, err)
		}
	}
	for _, pid := range shims {
		if err := waitDead(ctx, pid); err != nil {
			return res, err
		}
	}

	var out bytes.Buffer
	gc := f.persistctl(ctx, e.o.Bin, e.o.Namespace, "gc")
	gc.Stdout, gc.Stderr = &out, &out
	start := time.Now()
	err = gc.Run()
	d := time.Since(start)
	if err != nil {
		res.Skipped = "persistctl gc failed: " + firstLine(out.String())
		return res, nil
	}
	res.Seconds = d.Seconds()
	journals, _ := filepath.Glob(filepath.Join(f.stateDir, "journal", e.o.Namespace, "*"))
	mounts, err := containerdtest.MountsUnder(f.dir)
	if err != nil {
		return res, err
	}
	res.Remaining = len(journals) + len(mounts)
	return res, nil
}

// startSleeping starts a container of c that sleeps, and returns the PIDs
// of its process and of its shim.
func (e *env) startSleeping(ctx context.Context, c startCase, id, volume string) (int, int, error) {
	ctn, err := e.newContainer(ctx, c, id, volume, nil, "sleep", "3600")
	if err != nil {
		return 0, 0, fmt.Errorf("create %s: %w", id, err)
	}
	t, err := ctn.NewTask(ctx, cio.NullIO)
	if err != nil {
		return 0, 0, fmt.Errorf("create task %s: %w", id, err)
	}
	if err := t.Start(ctx); err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", id, err)
	}
	shim, err := parentPID(int(t.Pid()))
	return int(t.Pid()), shim, err
}

// waitDead waits until pid has exited; a zombie has.
func waitDead(ctx context.Context, pid int) error {
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return nil
		}
		if fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func sparseFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
