package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// lsRuns is how often `volumes ls` is timed; it changes nothing, so the
// median of a few runs is cheap.
const lsRuns = 5

// benchPersistctl times `persistctl volumes ls` over a fixture of many
// volumes and `persistctl gc` over leftovers of many dead containers. Each
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

// fixture is a config whose state dir and backends live in dir.
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
	cfg := fmt.Sprintf(`version = 1
state_dir = %q
default_class = "web"

[backends.dir]
type = "dir"
path = %q

[backends.loop]
type = "loopfile"
path = %q

[classes.web]
mode = "immutable"
`, f.stateDir, f.dirBackend.Path, f.loopBackend.Path)
	return f, os.WriteFile(f.config, []byte(cfg), 0o600)
}

func (f fixture) persistctl(ctx context.Context, bin, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(bin, "persistctl"), append([]string{"--config", f.config, "-n", ns}, args...)...)
}

type lsResult struct {
	Volumes int       `json:"volumes"`
	Seconds []float64 `json:"seconds,omitempty"`
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
		m := volumes.Meta{Name: fmt.Sprintf("vol-%05d", i), Namespace: e.o.Namespace, Backend: b.Name, Type: b.Type, Created: created, Class: "web"}
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
	return res, nil
}

type gcResult struct {
	Leftovers int     `json:"leftovers"`
	Mounted   int     `json:"mounted"`
	Locks     int     `json:"locks"`
	Seconds   float64 `json:"seconds,omitempty"`
	Remaining int     `json:"remaining"` // journals and mounts gc left
	Skipped   string  `json:"skipped,omitempty"`
}

// benchGC has a child process set up storage for e.o.Leftovers containers
// and die without releasing it, as a killed shim would, then times one
// `persistctl gc`; gc destroys its fixture, so it runs once.
func (e *env) benchGC(ctx context.Context) (gcResult, error) {
	res := gcResult{Leftovers: e.o.Leftovers}
	f, err := newFixture(filepath.Join(e.dir, "fixture-gc"))
	if err != nil {
		return res, err
	}
	spec := leftoverSpec{StateDir: f.stateDir, Backend: f.dirBackend, Namespace: e.o.Namespace, Count: e.o.Leftovers}
	b, _ := json.Marshal(spec)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), leftoverEnv+"="+string(b))
	if out, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("make leftovers: %v: %s", err, out)
	}
	res.Mounted, res.Locks = spec.mounted(), spec.locks()

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
	mounts, err := mountsUnder(f.dir)
	if err != nil {
		return res, err
	}
	res.Remaining = len(journals) + len(mounts)
	return res, nil
}

const leftoverEnv = "PERSIST_BENCH_LEFTOVERS"

// leftoverSpec tells a leftover maker what to leave behind.
type leftoverSpec struct {
	StateDir  string
	Backend   volumes.Backend
	Namespace string
	Count     int
}

// One in ten leftovers died with its scratch tmpfs mounted and a volume
// attached; the rest died before their mount.
func (s leftoverSpec) hasMount(i int) bool { return i%10 == 0 }
func (s leftoverSpec) mounted() int        { return (s.Count + 9) / 10 }
func (s leftoverSpec) locks() int          { return s.mounted() }

// child does a child's job and exits when this process was started as one
// (a leftover maker, or a cold step timer); otherwise it returns.
func child() {
	var err error
	switch {
	case os.Getenv(leftoverEnv) != "":
		var s leftoverSpec
		if err = json.Unmarshal([]byte(os.Getenv(leftoverEnv)), &s); err == nil {
			err = s.make()
		}
	case os.Getenv(coldStepsEnv) != "":
		err = coldSteps(os.Getenv(coldStepsEnv))
	default:
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// make goes through the shim's own setup steps and returns without undoing
// them; its process then exits, leaving the journals unlocked beside mounts
// and stale volume locks.
func (s leftoverSpec) make() error {
	h := host.Linux{}
	store := volumes.Open(s.StateDir, h, volumes.NewLocks())
	for i := range s.Count {
		id := fmt.Sprintf("dead-%05d", i)
		j, err := journal.Create(state.Dir(s.StateDir).Journal(s.Namespace, id))
		if err != nil {
			return err
		}
		dir := state.Dir(s.StateDir).Scratch(s.Namespace, id)
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return err
		}
		if err := j.Record(journal.Step{Kind: journal.Dir, Path: dir}); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		sc := filepath.Join(dir, "0")
		if !s.hasMount(i) {
			if err := j.Record(journal.Step{Kind: journal.Dir, Path: sc}); err != nil {
				return err
			}
			if err := os.Mkdir(sc, 0o700); err != nil {
				return err
			}
			continue
		}
		scratch := overlay.Scratch{Path: "/tmp", Size: 16 << 20}
		if err := scratch.MountUpper(h, j, sc, overlay.DefaultOwner); err != nil {
			return err
		}
		vid, err := volumes.NewID(s.Namespace, "", "vol-"+id)
		if err != nil {
			return err
		}
		_, err = store.Attach(j, volumes.AttachOptions{
			ID: vid, Backend: s.Backend, Class: "web",
			Holder: volumes.Holder{Namespace: s.Namespace, Container: id, Since: time.Now().UTC(), PID: os.Getpid()},
		})
		if err != nil {
			return err
		}
	}
	return nil
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
