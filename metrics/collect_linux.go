package metrics

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	var errs atomic.Int64
	records, err := timings.Read(c.o.StateDir)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descSetup, err)
	}
	c.collectVolumes(ch, &errs)
	c.collectScratch(ch, records, &errs)
	c.collectLeftovers(ch)
	collectTimings(records, ch)
	ch <- prometheus.MustNewConstMetric(descErrors, prometheus.GaugeValue, float64(errs.Load()))
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// collectVolumes reports every volume of every namespace and tenant.
func (c *Collector) collectVolumes(ch chan<- prometheus.Metric, errs *atomic.Int64) {
	store := volumes.Open(c.o.StateDir, c.o.Mounter, volumes.NewLocks())
	infos, err := store.List(c.o.Backends, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descCapacity, fmt.Errorf("list volumes: %w", err))
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
	var walked []string
	for i, v := range infos {
		if v.Type != volumes.Dir {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(contentDir(v), &st); err == nil && fsOf[v.Backend].err == nil && st.Dev != fsOf[v.Backend].dev {
			own[i] = true
			continue
		}
		walked = append(walked, contentDir(v))
	}
	du := c.dirs.usage(walked, time.Now())

	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			for i := range next {
				if err := c.volume(ch, store, infos[i], own[i], fsOf[infos[i].Backend], du); err != nil {
					errs.Add(1)
				}
			}
		})
	}
	for i := range infos {
		next <- i
	}
	close(next)
	wg.Wait()
}

func contentDir(v volumes.Info) string { return filepath.Join(v.Dir, "fs") }

// volume reports one volume. A loopfile volume is measured by statfs where
// this state dir has it mounted, else from its image's superblock; a dir
// volume by statfs when its content is a filesystem of its own, else by
// statfs of the filesystem it lives on for capacity and free space and by
// the cached walk for what it uses.
func (c *Collector) volume(ch chan<- prometheus.Metric, store *volumes.Store, v volumes.Info, own bool, bfs backendFS, du map[string]dirUsage) error {
	labels := []string{v.Namespace, v.Tenant, v.Name, v.Backend, v.Class}
	holder := ""
	attached := 0.0
	if v.Holder != nil {
		holder, attached = v.Holder.Namespace+"/"+v.Holder.Container, 1
	}
	gauge(ch, descAttached, attached, append(labels, holder)...)
	if !v.LastAttached.IsZero() {
		gauge(ch, descLastAttach, float64(v.LastAttached.UnixNano())/1e9, labels...)
	}
	var s FSStats
	var err error
	switch v.Type {
	case volumes.Loopfile:
		mounted := ""
		if v.Holder != nil {
			if id, err := volumes.NewID(v.Namespace, v.Tenant, v.Name); err == nil && mountedAt(store.MountPath(id)) {
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
			u, ok := du[dir]
			if !ok {
				// Not walked yet: capacity and free space only.
				gauge(ch, descCapacity, s.capacity(), labels...)
				gauge(ch, descAvailable, s.available(), labels...)
				gauge(ch, descInodes, float64(s.Files), labels...)
				gauge(ch, descInodesFree, float64(s.FilesFree), labels...)
				return nil
			}
			gauge(ch, descUsed, float64(u.Bytes), labels...)
			gauge(ch, descInodesUsed, float64(u.Inodes), labels...)
			gauge(ch, descCapacity, s.capacity(), labels...)
			gauge(ch, descAvailable, s.available(), labels...)
			gauge(ch, descInodes, float64(s.Files), labels...)
			gauge(ch, descInodesFree, float64(s.FilesFree), labels...)
			return nil
		}
	default:
		return fmt.Errorf("volume %s: unknown type %q", v.Name, v.Type)
	}
	if err != nil {
		return err
	}
	gauge(ch, descCapacity, s.capacity(), labels...)
	gauge(ch, descAvailable, s.available(), labels...)
	gauge(ch, descUsed, s.used(), labels...)
	gauge(ch, descInodes, float64(s.Files), labels...)
	gauge(ch, descInodesFree, float64(s.FilesFree), labels...)
	gauge(ch, descInodesUsed, s.inodesUsed(), labels...)
	return nil
}

// collectScratch reports the scratch areas of running containers: those
// whose journal a live shim holds. Each area is a mount at
// <state_dir>/scratch/<namespace>/<container>/<i>, the class's i-th scratch
// path, named by the shim's setup record. A memory scratch over an empty
// image path is a tmpfs that runc makes inside the container, with nothing
// on the host to measure: it is not reported.
func (c *Collector) collectScratch(ch chan<- prometheus.Metric, records []timings.Record, errs *atomic.Int64) {
	paths := map[[2]string][]string{}
	for _, r := range records {
		if r.Op == timings.Setup {
			paths[[2]string{r.Namespace, r.Container}] = r.Scratch
		}
	}
	d := state.Dir(c.o.StateDir)
	root := filepath.Join(c.o.StateDir, "scratch")
	for _, ns := range readDirs(root) {
		for _, id := range readDirs(filepath.Join(root, ns)) {
			if !journal.InUse(d.Journal(ns, id)) {
				continue // a leftover: gc reports it
			}
			for _, name := range readDirs(d.Scratch(ns, id)) {
				i, err := strconv.Atoi(name)
				p := filepath.Join(d.Scratch(ns, id), name)
				if err != nil || !mountedAt(p) {
					continue
				}
				s, fsType, err := statfs(p)
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
				gauge(ch, descScratchCap, s.capacity(), labels...)
				gauge(ch, descScratchUsed, s.used(), labels...)
				gauge(ch, descScratchAv, s.available(), labels...)
			}
		}
	}
}

// collectLeftovers counts what persistctl gc --dry-run would list, by kind.
func (c *Collector) collectLeftovers(ch chan<- prometheus.Metric) {
	found, err := state.NewGC(state.Dir(c.o.StateDir), c.o.Backends, c.o.Mounter).Find()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLeftovers, fmt.Errorf("find leftovers: %w", err))
		return
	}
	counts := map[string]int{}
	for _, k := range []string{state.KindJournal, state.KindScratch, state.KindMount, state.KindLoop, state.KindVolume, state.KindLock} {
		counts[k] = 0
	}
	for _, l := range found {
		counts[l.Kind]++
	}
	for k, n := range counts {
		gauge(ch, descLeftovers, float64(n), k)
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
