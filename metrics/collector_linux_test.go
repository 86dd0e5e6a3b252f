package metrics

import (
	"encoding/json"
	"fmt"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

type fixture struct {
	state    string
	backends []volumes.Backend
	store    *volumes.Store
}

func newFixture(t testing.TB) *fixture {
	root := t.TempDir()
	f := &fixture{
		state: filepath.Join(root, "state"),
		backends: []volumes.Backend{
			{Name: "local", Type: volumes.Dir, Path: filepath.Join(root, "local")},
			{Name: "sized", Type: volumes.Loopfile, Path: filepath.Join(root, "sized")},
		},
	}
	for _, d := range []string{f.state, f.backends[0].Path, f.backends[1].Path} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	f.store = volumes.Open(state.Dir(f.state).Volumes(), host.Linux{}, volumes.NewLocks())
	return f
}

func (f *fixture) create(t testing.TB, b volumes.Backend, tenant, name string, m volumes.Meta) volumes.ID {
	id, err := volumes.NewID("default", tenant, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.Create(b, id, m); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) collector() *Collector {
	return New(Options{StateDir: f.state, Backends: f.backends, Mounter: host.Linux{}})
}

// values gathers c and returns each sample as "name{l=v,...}" -> value.
func values(t testing.TB, c prometheus.Collector) map[string]float64 {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			key := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func TestCollect(t *testing.T) {
	testenv.NeedRoot(t) // backends must be root's
	f := newFixture(t)
	dirID := f.create(t, f.backends[0], "team-a", "web", volumes.Meta{Type: volumes.Dir, Class: "vm"})
	f.create(t, f.backends[1], "", "db", volumes.Meta{Type: volumes.Loopfile, Size: 32 << 20, Class: "db"})
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = 1
	}
	if err := os.WriteFile(filepath.Join(f.backends[0].Dir(dirID), "fs", "blob"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, r := range []timings.Record{
		{Op: timings.Setup, Namespace: "default", Container: "a", Class: "web", Seconds: 0.02},
		{Op: timings.Setup, Namespace: "default", Container: "b", Class: "web", Seconds: 0.3},
		{Op: timings.Teardown, Namespace: "default", Container: "a", Seconds: 0.01},
		{Op: timings.Fence, Namespace: "default", Container: "c", Volume: "pg", Backend: "shared", Outcome: timings.Stopped, Seconds: 0.02},
		{Op: timings.Fence, Namespace: "default", Container: "d", Volume: "pg", Backend: "shared", Outcome: timings.Stopped, Seconds: 0.03},
	} {
		if err := timings.Append(f.state, r); err != nil {
			t.Fatal(err)
		}
	}
	c := f.collector()
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	v := values(t, c)
	dirLabels := "backend=local,class=vm,namespace=default,tenant=team-a,volume=web"
	if used := v["persist_volume_used_bytes{"+dirLabels+"}"]; used < 1<<20 || used > 1<<20+64<<10 {
		t.Errorf("dir volume used %v bytes, want about 1 MiB: %v", used, v)
	}
	if n := v["persist_volume_inodes_used{"+dirLabels+"}"]; n != 2 {
		t.Errorf("dir volume inodes used %v, want 2 (its root and blob)", n)
	}
	loopLabels := "backend=sized,class=db,namespace=default,tenant=,volume=db"
	capacity := v["persist_volume_capacity_bytes{"+loopLabels+"}"]
	if capacity <= 24<<20 || capacity > 32<<20 { // less the journal, bitmaps and inode tables
		t.Errorf("loopfile capacity %v, want a little under 32 MiB", capacity)
	}
	if a := v["persist_volume_available_bytes{"+loopLabels+"}"]; a <= 0 || a >= capacity {
		t.Errorf("loopfile available %v of capacity %v", a, capacity)
	}
	if n := v["persist_volume_inodes_free{"+loopLabels+"}"]; n <= 0 || n >= v["persist_volume_inodes{"+loopLabels+"}"] {
		t.Errorf("loopfile inodes free %v", n)
	}
	if a := v["persist_volume_attached{"+loopLabels+",holder=}"]; a != 0 {
		t.Errorf("detached volume attached = %v", a)
	}
	if n := v["persist_shim_setup_duration_seconds{class=web}_count"]; n != 2 {
		t.Errorf("setup count %v, want 2", n)
	}
	if n := v["persist_shim_teardown_duration_seconds{}_count"]; n != 1 {
		t.Errorf("teardown count %v, want 1", n)
	}
	if n := v["persist_cluster_fence_events_total{backend=shared,namespace=default,outcome=stopped,tenant=,volume=pg}"]; n != 2 {
		t.Errorf("fence events %v, want 2: %v", n, v)
	}
	if n := v["persist_gc_leftovers{kind=scratch}"]; n != 0 {
		t.Errorf("leftovers %v, want 0", n)
	}
	// A leftover scratch dir of a container without a journal is counted.
	if err := os.MkdirAll(filepath.Join(f.state, "scratch", "default", "gone"), 0o700); err != nil {
		t.Fatal(err)
	}
	if n := values(t, c)["persist_gc_leftovers{kind=scratch}"]; n != 1 {
		t.Errorf("leftovers after a dead container's scratch: %v, want 1", n)
	}
}

// TestGatherMatchesRegistry checks that the Collector's own Gather, which
// persistctl serves and prints, gives byte for byte the text a registry
// holding it gives: the same families, samples and order. The volumes are
// made so that their listed order (namespace, tenant, name) is not their
// samples' order (labels sorted by name: backend, class, ...), and a held
// volume sorts by its holder before its namespace.
func TestGatherMatchesRegistry(t *testing.T) {
	testenv.NeedRoot(t) // backends must be root's
	f := newFixture(t)
	// The dir backend gets a filesystem of its own: the scrapes compared
	// below must not see the free space of a disk others write to.
	if err := unix.Mount("tmpfs", f.backends[0].Path, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(f.backends[0].Path, unix.MNT_DETACH) })
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var held volumes.ID
	for _, v := range []struct {
		b                  volumes.Backend
		ns, tenant, name   string
		class              string
		typ                string
		attachedOnce, hold bool
	}{
		{f.backends[1], "alpha", "", "a", "zeta", volumes.Loopfile, true, false},
		{f.backends[0], "alpha", "", "b", "zeta", volumes.Dir, false, true},
		{f.backends[0], "alpha", "t1", "c", "zeta", volumes.Dir, true, false},
		{f.backends[0], "beta", "", "a", "eta", volumes.Dir, false, false},
		{f.backends[1], "beta", "t0", "z", "db", volumes.Loopfile, false, false},
		{f.backends[0], "alpha", "", "z", "zeta", volumes.Dir, false, false},
	} {
		id, err := volumes.NewID(v.ns, v.tenant, v.name)
		if err != nil {
			t.Fatal(err)
		}
		m := volumes.Meta{Type: v.typ, Class: v.class}
		if v.typ == volumes.Loopfile {
			m.Size = 8 << 20
		}
		if v.attachedOnce {
			m.LastAttached = last
		}
		if err := f.store.Create(v.b, id, m); err != nil {
			t.Fatal(err)
		}
		if v.hold {
			held = id
		}
	}
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "zz", Container: "web", Since: last, PID: os.Getpid()}
	if err := locks.Acquire(f.backends[0].LockPath(held), h, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { locks.Release(f.backends[0].LockPath(held), h) })
	for _, r := range []timings.Record{
		{Op: timings.Setup, Namespace: "beta", Container: "a", Class: "web", Seconds: 0.02},
		{Op: timings.Setup, Namespace: "alpha", Container: "b", Class: "db", Seconds: 3},
		{Op: timings.Teardown, Namespace: "beta", Container: "a", Seconds: 0.01},
	} {
		if err := timings.Append(f.state, r); err != nil {
			t.Fatal(err)
		}
	}
	c := f.collector()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	text := func(g prometheus.Gatherer) string {
		mfs, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
		return b.String()
	}
	text(c) // the first scrape walks the dir volumes; both below use the cache
	own, viaRegistry := text(c), text(reg)
	if own != viaRegistry {
		t.Fatalf("Gather gives\n%s\nthe registry gives\n%s", own, viaRegistry)
	}
	if !strings.Contains(own, `persist_volume_attached{backend="local",class="zeta",holder="zz/web",namespace="alpha",tenant="",volume="b"} 1`) {
		t.Errorf("the held volume's holder is missing:\n%s", own)
	}
}

// TestSuperblockMatchesStatfs checks that an image read detached reports
// what statfs reports once it is mounted.
func TestSuperblockMatchesStatfs(t *testing.T) {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.img")
	h := host.Linux{}
	if err := h.MakeImage(img, 64<<20, host.ImageOptions{Journaled: true}); err != nil {
		t.Fatal(err)
	}
	detached, err := readSuperblock(img)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := mountLoop(h, img, mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Unmount(mnt) })
	mounted, _, err := statfs(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if detached != mounted {
		t.Fatalf("superblock says %+v, statfs of the mount %+v", detached, mounted)
	}
}

func BenchmarkCollect10000(b *testing.B) {
	testenv.NeedRoot(b)
	f := newFixture(b)
	// Half dir volumes, half loopfile volumes whose images hold a copy of
	// one real ext4 superblock: a scrape reads 1 KiB of each, never more.
	sb := filepath.Join(b.TempDir(), "sb.img")
	if err := (host.Linux{}).MakeImage(sb, 8<<20, host.ImageOptions{Sparse: true}); err != nil {
		b.Fatal(err)
	}
	head := make([]byte, 4096)
	fh, err := os.Open(sb)
	if err != nil {
		b.Fatal(err)
	}
	fh.ReadAt(head, 0)
	fh.Close()
	for i := range 5000 {
		f.create(b, f.backends[0], "", fmt.Sprintf("dir-%d", i), volumes.Meta{Type: volumes.Dir, Class: "vm"})
		dir := filepath.Join(f.backends[1].Path, "default", fmt.Sprintf("loop-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		meta, _ := json.Marshal(volumes.Meta{Name: fmt.Sprintf("loop-%d", i), Namespace: "default", Backend: "sized", Type: volumes.Loopfile, Size: 8 << 20, Class: "db"})
		if err := os.WriteFile(filepath.Join(dir, "volume.json"), meta, 0o600); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "disk.img"), head, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// Scraped as persistctl scrapes it, through the Collector's Gather.
	c := f.collector()
	// The first scrape walks every dir volume; later ones use the cache.
	if _, err := c.Gather(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		mfs, err := c.Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, mf := range mfs {
			if n := len(mf.GetMetric()); mf.GetName() == "persist_volume_capacity_bytes" && n != 10000 {
				b.Fatalf("scrape has %d volumes, want 10000", n)
			}
		}
	}
}

func mountLoop(h host.Linux, img, target string) error {
	return h.Mount(mount.Mount{Type: "ext4", Source: img, Options: []string{"loop"}}, target)
}
