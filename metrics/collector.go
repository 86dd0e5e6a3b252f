//go:build linux

package metrics

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// Options say what a Collector reads.
type Options struct {
	StateDir string
	Backends []volumes.Backend
	Mounter  host.Mounter
	// DirTTL is how long a dir volume's walk is trusted (default 5 min).
	DirTTL time.Duration
	// DirBudget bounds the entries walked in dir volumes per scrape
	// (default 1,000,000); the rest keep their older figures.
	DirBudget int
}

// Collector is a prometheus.Collector of a host's volumes, scratch areas,
// gc leftovers and shim setup times. Each scrape reads the state afresh,
// apart from the walks of dir volumes, which are cached.
type Collector struct {
	o    Options
	dirs *dirCache
}

// New returns a Collector of what o names.
func New(o Options) *Collector {
	if o.DirTTL <= 0 {
		o.DirTTL = 5 * time.Minute
	}
	if o.DirBudget <= 0 {
		o.DirBudget = 1_000_000
	}
	return &Collector{o: o, dirs: &dirCache{path: dirCachePath(o.StateDir), ttl: o.DirTTL, budget: o.DirBudget}}
}

func dirCachePath(stateDir string) string {
	return filepath.Join(state.Dir(stateDir).Metrics(), "dirusage.json")
}

// family is one metric family: its desc for the registry and the name,
// help and type its samples are gathered under.
type family struct {
	desc       *prometheus.Desc
	name, help string
	typ        dto.MetricType
}

func newFamily(name, help string, typ dto.MetricType, labels ...string) *family {
	return &family{desc: prometheus.NewDesc(name, help, labels, nil), name: name, help: help, typ: typ}
}

var volumeLabels = []string{"namespace", "tenant", "volume", "backend", "class"}

func volumeFamily(name, help string, extra ...string) *family {
	return newFamily(name, help, dto.MetricType_GAUGE, append(append([]string{}, volumeLabels...), extra...)...)
}

var scratchLabels = []string{"namespace", "container", "path", "medium"}

var (
	famCapacity    = volumeFamily("persist_volume_capacity_bytes", "Capacity in bytes of the volume's filesystem (a dir volume: of its backend's filesystem).")
	famAvailable   = volumeFamily("persist_volume_available_bytes", "Number of available bytes in the volume.")
	famUsed        = volumeFamily("persist_volume_used_bytes", "Number of used bytes in the volume.")
	famInodes      = volumeFamily("persist_volume_inodes", "Maximum number of inodes in the volume's filesystem.")
	famInodesFree  = volumeFamily("persist_volume_inodes_free", "Number of free inodes in the volume's filesystem.")
	famInodesUsed  = volumeFamily("persist_volume_inodes_used", "Number of used inodes in the volume.")
	famAttached    = volumeFamily("persist_volume_attached", "1 if a container holds the volume, 0 if not; holder is namespace/container of the holder.", "holder")
	famLastAttach  = volumeFamily("persist_volume_last_attach_timestamp_seconds", "When the volume was last attached to a container, in seconds since the epoch.")
	famScratchCap  = newFamily("persist_scratch_capacity_bytes", "Capacity in bytes of a running container's scratch area.", dto.MetricType_GAUGE, scratchLabels...)
	famScratchUsed = newFamily("persist_scratch_used_bytes", "Number of used bytes in a running container's scratch area.", dto.MetricType_GAUGE, scratchLabels...)
	famScratchAv   = newFamily("persist_scratch_available_bytes", "Number of available bytes in a running container's scratch area.", dto.MetricType_GAUGE, scratchLabels...)
	famLeftovers   = newFamily("persist_gc_leftovers", "Leftovers of dead containers that persistctl gc would remove, by kind.", dto.MetricType_GAUGE, "kind")
	famSetup       = newFamily("persist_shim_setup_duration_seconds", "Time the shim took to set up a container's storage, by class.", dto.MetricType_HISTOGRAM, "class")
	famTeardown    = newFamily("persist_shim_teardown_duration_seconds", "Time the shim took to release a container's storage.", dto.MetricType_HISTOGRAM)
	famFences      = newFamily("persist_cluster_fence_events_total", "Cluster locks fenced on this node: the container stopped and the volume unmounted because the lease could not be renewed or the shim died; outcome is stopped, late (after the lease's deadline) or failed.", dto.MetricType_COUNTER, "namespace", "tenant", "volume", "backend", "outcome")
	famErrors      = newFamily("persist_scrape_errors", "Volumes and scratch areas whose figures could not be read in this scrape.", dto.MetricType_GAUGE)
)

// families are all the families, sorted by name as a scrape shows them.
var families = func() []*family {
	fs := []*family{famCapacity, famAvailable, famUsed, famInodes, famInodesFree, famInodesUsed,
		famAttached, famLastAttach, famScratchCap, famScratchUsed, famScratchAv, famLeftovers, famSetup, famTeardown, famFences, famErrors}
	slices.SortFunc(fs, func(a, b *family) int { return strings.Compare(a.name, b.name) })
	return fs
}()

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, f := range families {
		ch <- f.desc
	}
}

// Buckets of the setup and teardown histograms, in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// histogram aggregates durations into a const histogram's counts.
type histogram struct {
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

func newHistogram() *histogram {
	h := &histogram{buckets: make(map[float64]uint64, len(durationBuckets))}
	for _, b := range durationBuckets {
		h.buckets[b] = 0
	}
	return h
}

func (h *histogram) observe(v float64) {
	h.count++
	h.sum += v
	for _, b := range durationBuckets {
		if v <= b {
			h.buckets[b]++
		}
	}
}

// collectTimings turns the shim's records into histograms.
func collectTimings(records []timings.Record, s *scrape) {
	setup := map[string]*histogram{}
	teardown := newHistogram()
	fences := map[[5]string]float64{}
	for _, r := range records {
		switch r.Op {
		case timings.Setup:
			h := setup[r.Class]
			if h == nil {
				h = newHistogram()
				setup[r.Class] = h
			}
			h.observe(r.Seconds)
		case timings.Teardown:
			teardown.observe(r.Seconds)
		case timings.Fence:
			fences[[5]string{r.Namespace, r.Tenant, r.Volume, r.Backend, r.Outcome}]++
		}
	}
	for l, n := range fences {
		s.add(famFences, prometheus.MustNewConstMetric(famFences.desc, prometheus.CounterValue, n, l[:]...))
	}
	for class, h := range setup {
		s.add(famSetup, prometheus.MustNewConstHistogram(famSetup.desc, h.count, h.sum, h.buckets, class))
	}
	s.add(famTeardown, prometheus.MustNewConstHistogram(famTeardown.desc, teardown.count, teardown.sum, teardown.buckets))
}
