package metrics

import (
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
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
	return filepath.Join(filepath.Dir(timings.Path(stateDir)), "dirusage.json")
}

var volumeLabels = []string{"namespace", "tenant", "volume", "backend", "class"}

func volumeDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, volumeLabels...), extra...), nil)
}

var scratchLabels = []string{"namespace", "container", "path", "medium"}

var (
	descCapacity    = volumeDesc("persist_volume_capacity_bytes", "Capacity in bytes of the volume's filesystem (a dir volume: of its backend's filesystem).")
	descAvailable   = volumeDesc("persist_volume_available_bytes", "Number of available bytes in the volume.")
	descUsed        = volumeDesc("persist_volume_used_bytes", "Number of used bytes in the volume.")
	descInodes      = volumeDesc("persist_volume_inodes", "Maximum number of inodes in the volume's filesystem.")
	descInodesFree  = volumeDesc("persist_volume_inodes_free", "Number of free inodes in the volume's filesystem.")
	descInodesUsed  = volumeDesc("persist_volume_inodes_used", "Number of used inodes in the volume.")
	descAttached    = volumeDesc("persist_volume_attached", "1 if a container holds the volume, 0 if not; holder is namespace/container of the holder.", "holder")
	descLastAttach  = volumeDesc("persist_volume_last_attach_timestamp_seconds", "When the volume was last attached to a container, in seconds since the epoch.")
	descScratchCap  = prometheus.NewDesc("persist_scratch_capacity_bytes", "Capacity in bytes of a running container's scratch area.", scratchLabels, nil)
	descScratchUsed = prometheus.NewDesc("persist_scratch_used_bytes", "Number of used bytes in a running container's scratch area.", scratchLabels, nil)
	descScratchAv   = prometheus.NewDesc("persist_scratch_available_bytes", "Number of available bytes in a running container's scratch area.", scratchLabels, nil)
	descLeftovers   = prometheus.NewDesc("persist_gc_leftovers", "Leftovers of dead containers that persistctl gc would remove, by kind.", []string{"kind"}, nil)
	descSetup       = prometheus.NewDesc("persist_shim_setup_duration_seconds", "Time the shim took to set up a container's storage, by class.", []string{"class"}, nil)
	descTeardown    = prometheus.NewDesc("persist_shim_teardown_duration_seconds", "Time the shim took to release a container's storage.", nil, nil)
	descErrors      = prometheus.NewDesc("persist_scrape_errors", "Volumes and scratch areas whose figures could not be read in this scrape.", nil, nil)
)

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapacity, descAvailable, descUsed, descInodes, descInodesFree, descInodesUsed,
		descAttached, descLastAttach, descScratchCap, descScratchUsed, descScratchAv, descLeftovers, descSetup, descTeardown, descErrors} {
		ch <- d
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
func collectTimings(records []timings.Record, ch chan<- prometheus.Metric) {
	setup := map[string]*histogram{}
	teardown := newHistogram()
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
		}
	}
	for class, h := range setup {
		ch <- prometheus.MustNewConstHistogram(descSetup, h.count, h.sum, h.buckets, class)
	}
	ch <- prometheus.MustNewConstHistogram(descTeardown, teardown.count, teardown.sum, teardown.buckets)
}
