//go:build linux

package metrics

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// scrape is what one scrape found: samples by family, and the errors that
// stand for what could not be read at all.
type scrape struct {
	metrics map[*family][]*dto.Metric
	errs    []scrapeError
}

type scrapeError struct {
	f   *family
	err error
}

func newScrape() *scrape { return &scrape{metrics: map[*family][]*dto.Metric{}} }

// add adds the sample m of family f.
func (s *scrape) add(f *family, m prometheus.Metric) {
	out := &dto.Metric{}
	if err := m.Write(out); err != nil {
		s.fail(f, err)
		return
	}
	s.metrics[f] = append(s.metrics[f], out)
}

// merge adds what o found to s.
func (s *scrape) merge(o *scrape) {
	for f, ms := range o.metrics {
		s.metrics[f] = append(s.metrics[f], ms...)
	}
	s.errs = append(s.errs, o.errs...)
}

func (s *scrape) fail(f *family, err error) { s.errs = append(s.errs, scrapeError{f, err}) }

// gaugeSample is a gauge's sample; labels are sorted by name.
func gaugeSample(v float64, labels []*dto.LabelPair) *dto.Metric {
	return &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: &v}}
}

// labelPairs pairs names with values, sorted by name as a sample has them.
func labelPairs(names []string, values ...string) []*dto.LabelPair {
	ps := make([]*dto.LabelPair, len(names))
	for i := range names {
		ps[i] = &dto.LabelPair{Name: &names[i], Value: &values[i]}
	}
	slices.SortFunc(ps, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
	return ps
}

// compareSamples orders the samples of a family as the client library's
// registry does: by their label values, labels sorted by name.
func compareSamples(a, b *dto.Metric) int {
	if c := cmp.Compare(len(a.Label), len(b.Label)); c != 0 {
		return c
	}
	for i, l := range a.Label {
		if c := strings.Compare(l.GetValue(), b.Label[i].GetValue()); c != 0 {
			return c
		}
	}
	return 0
}

// families returns the scrape's families as a registry gathers them:
// sorted by name, each one's samples sorted by their labels.
func (s *scrape) families() []*dto.MetricFamily {
	var out []*dto.MetricFamily
	for _, f := range families {
		ms := s.metrics[f]
		if len(ms) == 0 {
			continue
		}
		// Volumes' samples come in order already.
		if !slices.IsSortedFunc(ms, compareSamples) {
			slices.SortFunc(ms, compareSamples)
		}
		name, help, typ := f.name, f.help, f.typ
		out = append(out, &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: ms})
	}
	return out
}

// err is the scrape's errors as a registry reports them.
func (s *scrape) err() error {
	var errs prometheus.MultiError
	for _, e := range s.errs {
		errs.Append(fmt.Errorf("error collecting metric %v: %w", e.f.desc, e.err))
	}
	return errs.MaybeUnwrap()
}

// Gather implements prometheus.Gatherer. It gives what a registry holding
// only c gathers, the same families in the same order, without the
// registry's checks and sort of every sample, which cost more than the
// scrape itself with thousands of volumes. Serve and print c through it.
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	s := c.scrape()
	return s.families(), s.err()
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.scrape()
	for _, e := range s.errs {
		ch <- prometheus.NewInvalidMetric(e.f.desc, e.err)
	}
	for _, f := range families {
		for _, m := range s.metrics[f] {
			ch <- written{f.desc, m}
		}
	}
}

// written is a sample already written, as a prometheus.Metric.
type written struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (w written) Desc() *prometheus.Desc { return w.desc }

func (w written) Write(out *dto.Metric) error {
	out.Label, out.Gauge, out.Counter, out.Histogram = w.m.Label, w.m.Gauge, w.m.Counter, w.m.Histogram
	return nil
}

// parallel calls fn(0) to fn(n-1), a few at a time: most of the work of a
// scrape is waiting for small reads and stats.
func parallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, runtime.GOMAXPROCS(0)*2) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

var (
	_ prometheus.Collector = (*Collector)(nil)
	_ prometheus.Gatherer  = (*Collector)(nil)
)
