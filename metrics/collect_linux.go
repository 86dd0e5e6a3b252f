package metrics

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// scrape reads the state afresh, apart from the walks of dir volumes.
func (c *Collector) scrape() *scrape {
	s := newScrape()
	var errs atomic.Int64
	records, err := timings.Read(c.o.StateDir)
	if err != nil {
		s.fail(famSetup, err)
	}
	// The search for leftovers reads other files than the volumes' and
	// mostly one by one: it runs beside them.
	leftovers := newScrape()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.collectLeftovers(leftovers)
	}()
	c.collectVolumes(s, &errs)
	c.collectScratch(s, records, &errs)
	<-done
	s.merge(leftovers)
	collectTimings(records, s)
	s.add(famErrors, prometheus.MustNewConstMetric(famErrors.desc, prometheus.GaugeValue, float64(errs.Load())))
	return s
}

// volumeSample is a sample of one volume, made while volumes are read in
// parallel and added to the scrape in order after.
type volumeSample struct {
	f *family
	m *dto.Metric
}

// collectVolumes reports every volume of every namespace and tenant.
func (c *Collector) collectVolumes(s *scrape, errs *atomic.Int64) {
	store := volumes.Open(state.Dir(c.o.StateDir).Volumes(), c.o.Mounter, volumes.NewLocks())
	infos, err := store.List(c.o.Backends, "")
	if err != nil {
		s.fail(famCapacity, fmt.Errorf("list volumes: %w", err))
		return
	}
	// A dir volume's content is on its backend's filesystem, measured once
	// per scrape, unless it is a filesystem of its own. The others are
	// walked, within the cache's budget, before the per-volume work.
	fsOf := map[string]backendFS{}
	for _, b := range c.o.Backends {
		if b.Type == volumes.Dir {
			fsOf[b.Name] = statBackend(b.Path)
		}
	}
	own := make([]bool, len(infos))
	parallel(len(infos), func(i int) {
		v := infos[i]
		if v.Type != volumes.Dir {
			return
		}
		var st unix.Stat_t
		own[i] = unix.Lstat(contentDir(v), &st) == nil && fsOf[v.Backend].err == nil && st.Dev != fsOf[v.Backend].dev
	})
	var walked []string
	for i, v := range infos {
		if v.Type == volumes.Dir && !own[i] {
			walked = append(walked, contentDir(v))
		}
	}
	du := c.dirs.usage(walked, time.Now())

	samples := make([][]volumeSample, len(infos))
	parallel(len(infos), func(i int) {
		var err error
		if samples[i], err = c.volume(store, infos[i], own[i], fsOf[infos[i].Backend], du); err != nil {
			errs.Add(1)
		}
	})
	// In the order of the samples' labels sorted by name, which is the
	// order of a scrape.
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		a, b := infos[i], infos[j]
		return cmp.Or(strings.Compare(a.Backend, b.Backend), strings.Compare(a.Class, b.Class),
			strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Tenant, b.Tenant), strings.Compare(a.Name, b.Name))
	})
	for _, i := range order {
		for _, vs := range samples[i] {
			s.metrics[vs.f] = append(s.metrics[vs.f], vs.m)
		}
	}
}

func contentDir(v volumes.Info) string { return filepath.Join(v.Dir, "fs") }

// volume reports one volume. A loopfile volume is measured by statfs where
// this state dir has it mounted, else from its image's superblock; a dir
// volume by statfs when its content is a filesystem of its own, else by
// statfs of the filesystem it lives on for capacity and free space and by
// the cached walk for what it uses.
func (c *Collector) volume(store *volumes.Store, v volumes.Info, own bool, bfs backendFS, du map[string]dirUsage) ([]volumeSample, error) {
	labels := labelPairs(volumeLabels, v.Namespace, v.Tenant, v.Name, v.Backend, v.Class)
	holder := ""
	attached := 0.0
	if v.Holder != nil {
		holder, attached = v.Holder.Namespace+"/"+v.Holder.Container, 1
	}
	out := make([]volumeSample, 0, 8)
	gauge := func(f *family, v float64) { out = append(out, volumeSample{f, gaugeSample(v, labels)}) }
	out = append(out, volumeSample{famAttached, gaugeSample(attached, labelPairs(famAttachedLabels, v.Namespace, v.Tenant, v.Name, v.Backend, v.Class, holder))})
	if !v.LastAttached.IsZero() {
		gauge(famLastAttach, float64(v.LastAttached.UnixNano())/1e9)
	}
	var s FSStats
	var err error
	switch v.Type {
	case volumes.Loopfile:
		mounted := ""
		if v.Holder != nil {
			if id, err := volumes.NewID(v.Namespace, v.Tenant, v.Name); err == nil && host.MountedAt(store.MountPath(id)) {
				mounted = store.MountPath(id)
			}
		}
		if mounted != "" {
			s, _, err = statfs(mounted)
		} else {
			s, err = readSuperblock(filepath.Join(v.Dir, "disk.img"))
		}
	case volumes.Dir:
		dir := contentDir(v)
		if own {
			s, _, err = statfs(dir)
			break
		}
		s, err = bfs.stats, bfs.err
		if err == nil {
			// Not walked yet: capacity and free space only.
			if u, ok := du[dir]; ok {
				gauge(famUsed, float64(u.Bytes))
				gauge(famInodesUsed, float64(u.Inodes))
			}
			gauge(famCapacity, s.capacity())
			gauge(famAvailable, s.available())
			gauge(famInodes, float64(s.Files))
			gauge(famInodesFree, float64(s.FilesFree))
			return out, nil
		}
	default:
		return out, fmt.Errorf("volume %s: unknown type %q", v.Name, v.Type)
	}
	if err != nil {
		return out, err
	}
	gauge(famCapacity, s.capacity())
	gauge(famAvailable, s.available())
	gauge(famUsed, s.used())
	gauge(famInodes, float64(s.Files))
	gauge(famInodesFree, float64(s.FilesFree))
	gauge(famInodesUsed, s.inodesUsed())
	return out, nil
}

// famAttachedLabels are the labels of famAttached, in its desc's order.
var famAttachedLabels = append(append([]string{}, volumeLabels...), "holder")

// collectScratch reports the scratch areas of running containers: those
// whose journal a live shim holds. Each area is a mount at
// <state_dir>/scratch/<namespace>/<container>/<i>, the class's i-th scratch
// path, named by the shim's setup record. A memory scratch over an empty
// image path is a tmpfs that runc makes inside the container, with nothing
// on the host to measure: it is not reported.
func (c *Collector) collectScratch(s *scrape, records []timings.Record, errs *atomic.Int64) {
	paths := map[[2]string][]string{}
	for _, r := range records {
		if r.Op == timings.Setup {
			paths[[2]string{r.Namespace, r.Container}] = r.Scratch
		}
	}
	d := state.Dir(c.o.StateDir)
	// An unreadable scratch root reads as no scratch, as a missing one does.
	_ = d.EachScratch(func(ns, id, dir string) {
		if !journal.InUse(d.Journal(ns, id)) {
			return // a leftover: gc reports it
		}
		for _, name := range readDirs(dir) {
			i, err := strconv.Atoi(name)
			p := filepath.Join(dir, name)
			if !host.MountedAt(p) {
				p = overlay.Scratch{Disk: true}.Root(p) // a disk scratch's own directory
			}
			if err != nil || !host.MountedAt(p) {
				continue
			}
			st, fsType, err := statfs(p)
			if err != nil {
				errs.Add(1)
				continue
			}
			path := "#" + name // a scratch made before the shim kept records
			if sc := paths[[2]string{ns, id}]; i < len(sc) {
				path = sc[i]
			}
			medium := "disk"
			if fsType == unix.TMPFS_MAGIC {
				medium = "memory"
			}
			labels := []string{ns, id, path, medium}
			s.add(famScratchCap, prometheus.MustNewConstMetric(famScratchCap.desc, prometheus.GaugeValue, st.capacity(), labels...))
			s.add(famScratchUsed, prometheus.MustNewConstMetric(famScratchUsed.desc, prometheus.GaugeValue, st.used(), labels...))
			s.add(famScratchAv, prometheus.MustNewConstMetric(famScratchAv.desc, prometheus.GaugeValue, st.available(), labels...))
		}
	})
}

// collectLeftovers counts what persistctl gc --dry-run would list, by kind.
func (c *Collector) collectLeftovers(s *scrape) {
	found, err := state.NewGC(state.Dir(c.o.StateDir), c.o.Backends, c.o.Mounter).Find()
	if err != nil {
		s.fail(famLeftovers, fmt.Errorf("find leftovers: %w", err))
		return
	}
	counts := map[string]int{}
	for _, k := range []string{state.KindJournal, state.KindScratch, state.KindMount, state.KindLoop, state.KindVolume, state.KindLock} {
		counts[k] = 0
	}
	for _, l := range found {
		if l.Kind != state.KindSpare { // kept on purpose, though gc drains them too
			counts[l.Kind]++
		}
	}
	for k, n := range counts {
		s.add(famLeftovers, prometheus.MustNewConstMetric(famLeftovers.desc, prometheus.GaugeValue, float64(n), k))
	}
}

// backendFS is the filesystem a dir backend lives on.
type backendFS struct {
	dev   uint64
	stats FSStats
	err   error
}

func statBackend(path string) backendFS {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return backendFS{err: &os.PathError{Op: "stat", Path: path, Err: err}}
	}
	s, _, err := statfs(path)
	return backendFS{dev: uint64(st.Dev), stats: s, err: err}
}

// readDirs lists the directories in dir, none if it is missing.
func readDirs(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}
