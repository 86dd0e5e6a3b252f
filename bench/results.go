package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/containerd/continuity"
)

// results is everything a run measured, with the machine it ran on; it is
// written as JSON.
type results struct {
	Date      time.Time        `json:"date"`
	Machine   machine          `json:"machine"`
	Options   options          `json:"options"`
	Start     []startResult    `json:"start,omitempty"`
	Memory    []memoryResult   `json:"memory,omitempty"`
	IO        []ioTargetResult `json:"io,omitempty"`
	Scale     []scaleResult    `json:"scale,omitempty"`
	VolumesLs *lsResult        `json:"volumes_ls,omitempty"`
	GC        *gcResult        `json:"gc,omitempty"`
	Steps     []stepResult     `json:"steps,omitempty"`
	Snapshot  []snapshotResult `json:"snapshot,omitempty"`
	Cluster   *clusterResult   `json:"cluster,omitempty"`
	Budget    []budgetLine     `json:"budget"`
}

// series is the samples of one measurement and their median.
type series struct {
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
}

func newSeries(xs []float64) series { return series{Samples: xs, Median: median(xs)} }

type startResult struct {
	startCase
	Ctr series `json:"ctr_ms"`
	// CtrRatio is the median of the rounds' ratios of this case's time to
	// runc's, and CtrCI its 95% interval.
	CtrRatio    float64    `json:"ctr_ratio"`
	CtrCI       [2]float64 `json:"ctr_ratio_ci95"`
	Client      series     `json:"client_ms"`
	ClientRatio float64    `json:"client_ratio"`
	ClientCI    [2]float64 `json:"client_ratio_ci95"`
	// Phases are the Go client runs' phases (see phases), median ms each.
	Phases map[string]series `json:"client_phases_ms"`
	// ShimSetup and ShimTeardown are what the shim recorded of its
	// storage setup and teardown, in ms, for both clients' runs.
	ShimSetup    series `json:"shim_setup_ms"`
	ShimTeardown series `json:"shim_teardown_ms"`
	// CPU is the CPU time per container of containerd, the shim and what
	// they ran (see cpuMeter), ms, both clients' runs. CPUExtra is the
	// median of its differences to runc's runs of the same round and
	// client, CPUExtraCI their 95% interval.
	CPU        series     `json:"cpu_ms"`
	CPUExtra   float64    `json:"cpu_extra_ms"`
	CPUExtraCI [2]float64 `json:"cpu_extra_ms_ci95"`
	// CPULimit is the extra CPU that the case's budget allows: the
	// budget's share of runc's median Go client start-to-exit.
	CPULimit float64 `json:"cpu_limit_ms,omitempty"`
}

// resolvedAt says whether an interval is narrower than width of its
// ratio, so that a difference of width shows.
func resolvedAt(ratio float64, ci [2]float64, width float64) bool {
	return ratio > 0 && (ci[1]-ci[0])/ratio <= width
}

// verdicts are the start table's results through ctr and the Go client.
// A wall time ratio decides where its interval lies wholly on one side of
// the budget, or is narrower than width; else the CPU per container beyond
// runc's decides (marked so): on a busy machine it is what resolves.
func (s startResult) verdicts(width float64) (ctr, client string) {
	return s.verdict(s.CtrRatio, s.CtrCI, width), s.verdict(s.ClientRatio, s.ClientCI, width)
}

func (s startResult) verdict(ratio float64, ci [2]float64, width float64) string {
	if wallDecides(ratio, ci, s.Budget, width) {
		return verdict(ratio <= s.Budget)
	}
	if len(s.CPU.Samples) == 0 {
		return verdict(false) + " (not resolved, no CPU time)"
	}
	return verdict(s.CPUExtra <= s.CPULimit) + " (CPU)"
}

// wallDecides says whether a ratio's interval decides its budget: it lies
// wholly above or below it, or is narrower than width.
func wallDecides(ratio float64, ci [2]float64, budget, width float64) bool {
	return ci[0] > budget || ci[1] <= budget || resolvedAt(ratio, ci, width)
}

type memoryResult struct {
	Case       string    `json:"case"`
	Title      string    `json:"title"`
	RSSMiB     []float64 `json:"rss_mib"`
	MeanMiB    float64   `json:"mean_mib"`
	RatioMeans float64   `json:"ratio"`
	AnonMiB    float64   `json:"mean_rss_anon_mib"`
	PssMiB     float64   `json:"mean_pss_mib"`
}

type ioTargetResult struct {
	Case      string  `json:"case"`
	Title     string  `json:"title"`
	Host      string  `json:"host"`
	HostTitle string  `json:"host_title"`
	SeqMiBs   series  `json:"seq_mib_s"`
	HostSeq   series  `json:"host_seq_mib_s"`
	SeqRatio  float64 `json:"seq_ratio"`
	IOPS      series  `json:"rand_iops"`
	HostIOPS  series  `json:"host_rand_iops"`
	IOPSRatio float64 `json:"rand_ratio"`
	Overlay   string  `json:"overlay,omitempty"` // why random writes have no budget
}

type scaleResult struct {
	Case   string             `json:"case"`
	Title  string             `json:"title"`
	WallMS map[string]series  `json:"wall_ms"` // by concurrency
	Ratio  map[string]float64 `json:"ratio"`
}

// budgetLine is one line of the performance budget and how this run did.
type budgetLine struct {
	What   string  `json:"what"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"` // "x runc", "x host", "s"
	AtMost bool    `json:"at_most"`
	Pass   bool    `json:"pass"`
	Note   string  `json:"note,omitempty"`
	// Unresolved marks a line whose interval is too wide to decide it:
	// another line decides (Note says which).
	Unresolved bool `json:"unresolved,omitempty"`
}

func newResults(o options, e *env) *results {
	return &results{Date: time.Now().UTC(), Machine: describeMachine(e), Options: o}
}

func (r *results) budget(what string, value, limit float64, unit string, atMost bool) {
	pass := value >= limit
	if atMost {
		pass = value <= limit
	}
	r.Budget = append(r.Budget, budgetLine{What: what, Value: value, Limit: limit, Unit: unit, AtMost: atMost, Pass: pass})
}

func (r *results) setStart(all []startCase, ctr, cl map[string][]float64, phaseMS map[string][][]float64, cpu map[string][][2]float64) {
	base := all[0].Name
	for _, c := range all {
		s := startResult{startCase: c, Ctr: newSeries(ctr[c.Name]), Client: newSeries(cl[c.Name])}
		s.CtrRatio, s.CtrCI = pairedRatio(ctr[c.Name], ctr[base])
		s.ClientRatio, s.ClientCI = pairedRatio(cl[c.Name], cl[base])
		s.Phases = map[string]series{}
		for i, p := range phaseMS[c.Name] {
			s.Phases[phases[i]] = newSeries(p)
		}
		var all, extra []float64
		for i, x := range cpu[c.Name] {
			all = append(all, x[0], x[1])
			if i < len(cpu[base]) {
				extra = append(extra, x[0]-cpu[base][i][0], x[1]-cpu[base][i][1])
			}
		}
		s.CPU = newSeries(all)
		s.CPUExtra, s.CPUExtraCI = medianCI(extra)
		if c.Budget > 0 {
			s.CPULimit = math.Round((c.Budget-1)*median(cl[base])*10) / 10
		}
		r.Start = append(r.Start, s)
		if c.Budget > 0 {
			r.budgetStart("start-to-exit, ctr, "+c.Title, s.CtrRatio, s.CtrCI, c.Budget)
			r.budgetStart("start-to-exit, Go client, "+c.Title, s.ClientRatio, s.ClientCI, c.Budget)
			if len(s.CPU.Samples) > 0 {
				r.budget("CPU per container beyond runc's, "+c.Title, s.CPUExtra, s.CPULimit, "ms", true)
			}
		}
	}
}

// budgetStart is a start-to-exit budget line, which says when its interval
// does not decide the budget: the CPU line of its case decides then.
func (r *results) budgetStart(what string, ratio float64, ci [2]float64, limit float64) {
	r.budget(what, ratio, limit, "x runc", true)
	if !wallDecides(ratio, ci, limit, r.Options.Resolve) {
		b := &r.Budget[len(r.Budget)-1]
		b.Unresolved = true
		b.Note = fmt.Sprintf("not resolved (95%% interval %.3f–%.3f): the CPU line decides", ci[0], ci[1])
	}
}

func (r *results) setMemory(kinds []startCase, rss, anon, pss map[string][]float64) {
	base := mean(rss[kinds[0].Name])
	for _, c := range kinds {
		m := memoryResult{Case: c.Name, Title: c.Title, RSSMiB: rss[c.Name], MeanMiB: mean(rss[c.Name]),
			AnonMiB: mean(anon[c.Name]), PssMiB: mean(pss[c.Name])}
		m.RatioMeans = m.MeanMiB / base
		r.Memory = append(r.Memory, m)
		if c.Class != "" {
			r.budget("shim RSS, "+c.Title, m.RatioMeans, 1.10, "x runc", true)
		}
	}
}

func (r *results) setIO(targets []hostTarget, seq, iops map[string][]float64) {
	titles := map[string]string{}
	for _, t := range targets {
		titles[t.Name] = t.Title
	}
	for _, p := range ioPairs {
		h := "host:" + p.Host
		t := ioTargetResult{Case: p.Case, Title: p.Title, Host: p.Host, HostTitle: titles[p.Host],
			SeqMiBs: newSeries(seq[p.Case]), HostSeq: newSeries(seq[h]),
			IOPS: newSeries(iops[p.Case]), HostIOPS: newSeries(iops[h]), Overlay: p.Overlay}
		t.SeqRatio = t.SeqMiBs.Median / t.HostSeq.Median
		t.IOPSRatio = t.IOPS.Median / t.HostIOPS.Median
		r.IO = append(r.IO, t)
		r.budget("sequential write, "+p.Title, t.SeqRatio, 0.90, "x host", false)
		if p.Overlay == "" {
			r.budget("4 KiB random write, "+p.Title, t.IOPSRatio, 0.90, "x host", false)
		}
	}
}

func (r *results) setScale(picked []startCase, wall map[string]map[int][]float64) {
	base := wall[picked[0].Name]
	for _, c := range picked {
		s := scaleResult{Case: c.Name, Title: c.Title, WallMS: map[string]series{}, Ratio: map[string]float64{}}
		for n, xs := range wall[c.Name] {
			k := fmt.Sprint(n)
			s.WallMS[k] = newSeries(xs)
			s.Ratio[k] = median(xs) / median(base[n])
		}
		r.Scale = append(r.Scale, s)
	}
}

func (r *results) setPersistctl(ls lsResult, gc gcResult) {
	r.VolumesLs, r.GC = &ls, &gc
	what := fmt.Sprintf("persistctl volumes ls, %d volumes", ls.Volumes)
	if ls.Skipped != "" {
		r.Budget = append(r.Budget, budgetLine{What: what, Limit: 0.5, Unit: "s", AtMost: true, Note: "skipped: " + ls.Skipped})
		return
	}
	r.budget(what, median(ls.Seconds), 0.5, "s", true)
	if len(ls.Scrape) > 0 {
		r.budget(fmt.Sprintf("persistctl metrics, %d volumes", ls.Volumes), median(ls.Scrape), 1, "s", true)
	}
}

func (r *results) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return continuity.AtomicWriteFile(path, append(b, '\n'), 0o644)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianCI is the median of xs and its 95% interval, as pairedRatio
// gives it for ratios.
func medianCI(xs []float64) (float64, [2]float64) {
	n := len(xs)
	if n == 0 {
		return 0, [2]float64{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	lo, hi := signTestRanks(n)
	return median(s), [2]float64{s[lo-1], s[hi-1]}
}

// signTestRanks are the 1-based ranks of the order statistics that bound a
// median's 95% interval among n samples (a sign test's, by the normal
// approximation).
func signTestRanks(n int) (lo, hi int) {
	h := 1.96 * math.Sqrt(float64(n)) / 2
	lo = max(int(math.Floor(float64(n)/2-h)), 1)
	hi = min(int(math.Ceil(float64(n)/2+h))+1, n)
	return lo, hi
}

// pairedRatio is the median of the ratios a[i]/b[i] of runs paired by
// round, and its 95% interval: the order statistics around the median that
// a sign test gives, which assumes nothing of the ratios' distribution.
// Pairing takes the machine's drift out of the ratio; the interval says
// how far the ratio could move on another run of the same machine.
func pairedRatio(a, b []float64) (float64, [2]float64) {
	n := min(len(a), len(b))
	if n == 0 {
		return 0, [2]float64{}
	}
	ratios := make([]float64, n)
	for i := range ratios {
		ratios[i] = a[i] / b[i]
	}
	slices.Sort(ratios)
	lo, hi := signTestRanks(n)
	return median(ratios), [2]float64{ratios[lo-1], ratios[hi-1]}
}

// widest is the widest interval of any case's ratio to runc (the first
// case), relative to the ratio, through ctr or the Go client.
func widest(cases []startCase, ctr, cl map[string][]float64) float64 {
	w := 0.0
	for _, c := range cases[1:] {
		for _, xs := range []map[string][]float64{ctr, cl} {
			r, ci := pairedRatio(xs[c.Name], xs[cases[0].Name])
			if r == 0 {
				return math.Inf(1)
			}
			w = max(w, (ci[1]-ci[0])/r)
		}
	}
	return w
}

// resolved reports whether every interval is narrower than width, so that
// a difference of width shows.
func resolved(cases []startCase, width float64, ctr, cl map[string][]float64) bool {
	return widest(cases, ctr, cl) <= width
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
