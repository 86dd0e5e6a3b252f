package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// The tables are markdown, ready for the README.

func (r *results) printHeader(w io.Writer) {
	m := r.Machine
	vm := ""
	if m.VM {
		vm = ", VM"
	}
	fmt.Fprintf(w, "# containerd-persist bench, %s\n\n", r.Date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "%d vCPU (%s%s), %d MiB, %s, kernel %s, cgroup %s; %s; runc %s; %s; state dir and backends on %s.\n",
		m.CPUs, m.CPU, vm, m.MemoryMiB, m.OS, m.Kernel, m.Cgroup, m.Containerd, strings.TrimPrefix(m.Runc, "runc version "), m.Go, m.WorkFS)
}

func (r *results) print(w io.Writer, part string) {
	switch part {
	case "start":
		r.printStart(w)
		r.printPhases(w)
		r.printCPU(w)
	case "memory":
		r.printMemory(w)
	case "io":
		r.printIO(w)
	case "scale":
		r.printScale(w)
	case "persistctl":
		r.printPersistctl(w)
	case "steps":
		r.printSteps(w)
	case "snapshot":
		r.printSnapshot(w)
	case "cluster":
		r.printCluster(w)
	}
}

func (r *results) printStart(w io.Writer) {
	rounds := 0
	if len(r.Start) > 0 {
		rounds = len(r.Start[0].Ctr.Samples)
	}
	fmt.Fprintf(w, "\n## Start-to-exit (`true`), median of %d rounds\n\n", rounds)
	fmt.Fprintln(w, "Each round runs every case once, in a rotated order; × runc is the median of the rounds' ratios of a case to runc, with its 95% interval.")
	fmt.Fprintf(w, "Rounds go on until every interval is narrower than %.1f%% of its ratio, or %d rounds: %s.\n\n", 100*r.Options.Resolve, r.Options.MaxRuns, r.resolution())
	fmt.Fprintln(w, "| case | `ctr run --rm` ms | × runc (95% CI) | Go client ms | × runc (95% CI) | budget | ctr | client |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|---|---|")
	for _, s := range r.Start {
		budget, ctr, cl := "—", "—", "—"
		if s.Budget > 0 {
			budget = fmt.Sprintf("≤ %.2f×", s.Budget)
			ctr, cl = s.verdicts(r.Options.Resolve)
		}
		fmt.Fprintf(w, "| %s | %.1f | %s | %.1f | %s | %s | %s | %s |\n",
			s.Title, s.Ctr.Median, withCI(s.CtrRatio, s.CtrCI), s.Client.Median, withCI(s.ClientRatio, s.ClientCI), budget, ctr, cl)
	}
}

// printPhases shows where each case spends its time beyond runc's: the
// median of each phase of the Go client runs, as a difference from runc.
func (r *results) printPhases(w io.Writer) {
	if len(r.Start) == 0 || len(r.Start[0].Phases) == 0 {
		return
	}
	fmt.Fprintf(w, "\nGo client runs by phase, median ms (runc) and ms more than runc (others); then the shim's storage setup and teardown, median ms as the shim recorded them:\n\n")
	head, rule := "| case |", "|---|"
	for _, p := range phases {
		head += " " + p + " |"
		rule += "--:|"
	}
	head, rule = head+" shim setup | shim teardown |", rule+"--:|--:|"
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	base := r.Start[0].Phases
	for i, s := range r.Start {
		line := "| " + s.Title + " |"
		for _, p := range phases {
			if i == 0 {
				line += fmt.Sprintf(" %.1f |", base[p].Median)
			} else {
				line += fmt.Sprintf(" %+.1f |", s.Phases[p].Median-base[p].Median)
			}
		}
		for _, t := range []series{s.ShimSetup, s.ShimTeardown} {
			if len(t.Samples) == 0 {
				line += " — |"
			} else {
				line += fmt.Sprintf(" %.2f |", t.Median)
			}
		}
		fmt.Fprintln(w, line)
	}
}

// printCPU shows the CPU time per container of containerd, the shim's
// processes and what they run, and how much more than runc's it is.
func (r *results) printCPU(w io.Writer) {
	if len(r.Start) == 0 || len(r.Start[0].CPU.Samples) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCPU time per container of the shim's three processes and what they run (runc, mkfs): a cgroup's cpu.stat, less containerd's own threads; paired with runc's run of the same round and client. A case's limit is its budget's share of runc's Go client start-to-exit; where a wall time interval does not resolve its budget, this decides:\n\n")
	fmt.Fprintln(w, "| case | CPU ms | more than runc ms (95% CI) | limit ms | result |")
	fmt.Fprintln(w, "|---|--:|--:|--:|---|")
	for i, s := range r.Start {
		if i == 0 {
			fmt.Fprintf(w, "| %s | %.1f | — | — | — |\n", s.Title, s.CPU.Median)
			continue
		}
		limit, res := "—", "—"
		if s.Budget > 0 {
			limit, res = fmt.Sprintf("%.1f", s.CPULimit), verdict(s.CPUExtra <= s.CPULimit)
		}
		fmt.Fprintf(w, "| %s | %.1f | %+.2f (%+.2f – %+.2f) | %s | %s |\n", s.Title, s.CPU.Median, s.CPUExtra, s.CPUExtraCI[0], s.CPUExtraCI[1], limit, res)
	}
}

func (r *results) printMemory(w io.Writer) {
	fmt.Fprintf(w, "\n## Shim memory: VmRSS per running container, mean of %d\n\n", r.Options.RSS)
	fmt.Fprintln(w, "| shim | VmRSS MiB | × runc | budget | result | RssAnon MiB | Pss MiB |")
	fmt.Fprintln(w, "|---|--:|--:|--:|---|--:|--:|")
	for _, m := range r.Memory {
		budget, res := "—", "—"
		if m.Case != "runc" {
			budget, res = "≤ 1.10×", verdict(m.RatioMeans <= 1.10)
		}
		fmt.Fprintf(w, "| %s | %.1f | %.3f | %s | %s | %.1f | %.1f |\n", m.Title, m.MeanMiB, m.RatioMeans, budget, res, m.AnonMiB, m.PssMiB)
	}
	fmt.Fprintln(w, "\nVmRSS counts the shim binary's pages, which all shims of one build share; Pss splits them among the shims.")
}

func (r *results) printIO(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "\n## Writes inside the container vs the same filesystem on the host, median of %d\n\n", o.IORuns)
	fmt.Fprintf(w, "Sequential: %d MiB in 1 MiB writes + fsync. Random: %d × 4 KiB writes at random offsets of a %d MiB file + fsync.\n\n",
		o.SeqMiB, o.RandWrites, o.RandMiB)
	fmt.Fprintln(w, "| where | host baseline | seq MiB/s | host | × host | rand IOPS | host | × host | budget | result |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, t := range r.IO {
		budget, pass := "≥ 0.90×", t.SeqRatio >= 0.9 && t.IOPSRatio >= 0.9
		if t.Overlay != "" {
			budget, pass = fmt.Sprintf("≥ 0.90× seq; rand none (%s)", t.Overlay), t.SeqRatio >= 0.9
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f | %s | %s |\n",
			t.Title, t.HostTitle, t.SeqMiBs.Median, t.HostSeq.Median, t.SeqRatio,
			t.IOPS.Median, t.HostIOPS.Median, t.IOPSRatio, budget, verdict(pass))
	}
	fmt.Fprintln(w, "\nRandom writes are held to the budget where the scratch path is empty in the image, the common case: a plain tmpfs. Laid over the image's content, a scratch is an overlay, and each write pays overlayfs's own cost.")
}

func (r *results) printScale(w io.Writer) {
	levels := r.Options.Scale
	fmt.Fprintf(w, "\n## Concurrent creates (Go client): wall time until all have exited and been deleted, median of %d\n\n", r.Options.ScaleRuns)
	head, rule := "| case |", "|---|"
	for _, n := range levels {
		head += fmt.Sprintf(" %d at once ms | × runc |", n)
		rule += "--:|--:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, s := range r.Scale {
		line := "| " + s.Title + " |"
		for _, n := range levels {
			k := fmt.Sprint(n)
			line += fmt.Sprintf(" %.0f | %.2f |", s.WallMS[k].Median, s.Ratio[k])
		}
		fmt.Fprintln(w, line)
	}
}

func (r *results) printPersistctl(w io.Writer) {
	fmt.Fprintln(w, "\n## persistctl")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| command | fixture | seconds | budget | result |")
	fmt.Fprintln(w, "|---|---|--:|--:|---|")
	if ls := r.VolumesLs; ls != nil {
		fixture := fmt.Sprintf("%d volumes (1 in 10 loopfile)", ls.Volumes)
		if ls.Skipped != "" {
			fmt.Fprintf(w, "| `volumes ls` | %s | — | ≤ 0.5 s | SKIPPED: %s |\n", fixture, ls.Skipped)
		} else {
			s := median(ls.Seconds)
			fmt.Fprintf(w, "| `volumes ls` (median of %d) | %s | %.3f | ≤ 0.5 s | %s |\n", len(ls.Seconds), fixture, s, verdict(s <= 0.5))
			if len(ls.Scrape) > 0 {
				s := median(ls.Scrape)
				fmt.Fprintf(w, "| `metrics` (median of %d, after a first scrape) | %s | %.3f | < 1 s | %s |\n", len(ls.Scrape), fixture, s, verdict(s < 1))
			}
		}
	}
	if gc := r.GC; gc != nil {
		fixture := fmt.Sprintf("%d containers whose shims were killed with containerd stopped, each with a memory /tmp mounted; %d with a dir volume", gc.Leftovers, gc.Volumes)
		if gc.Skipped != "" {
			fmt.Fprintf(w, "| `gc` | %s | — | — | SKIPPED: %s |\n", fixture, gc.Skipped)
		} else {
			fmt.Fprintf(w, "| `gc` (one run; %d left after it) | %s | %.3f | — | — |\n", gc.Remaining, fixture, gc.Seconds)
		}
	}
}

func (r *results) printSteps(w io.Writer) {
	fmt.Fprintf(w, "\n## The shim's setup steps: Go benchmarks of the packages that own them, %d runs each\n\n", r.Options.StepRuns)
	fmt.Fprintln(w, "| package | benchmark | ms/op | also |")
	fmt.Fprintln(w, "|---|---|--:|---|")
	for _, s := range r.Steps {
		var also []string
		for _, k := range slices.Sorted(maps.Keys(s.Metrics)) {
			if name, ok := strings.CutSuffix(k, "-ns/op"); ok {
				also = append(also, fmt.Sprintf("%s %.2f ms", name, s.Metrics[k]/1e6))
			} else {
				also = append(also, fmt.Sprintf("%g %s", s.Metrics[k], k))
			}
		}
		fmt.Fprintf(w, "| %s | %s | %.2f | %s |\n", s.Package, s.Name, s.MS, strings.Join(also, ", "))
	}
}

func (r *results) printBudget(w io.Writer) {
	fmt.Fprintln(w, "\n## Budget")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| line | measured | limit | result |")
	fmt.Fprintln(w, "|---|--:|--:|---|")
	missed := 0
	for _, b := range r.Budget {
		op := "≥"
		if b.AtMost {
			op = "≤"
		}
		switch {
		case b.Unresolved:
			fmt.Fprintf(w, "| %s | %.3f %s | %s %g %s | %s |\n", b.What, b.Value, b.Unit, op, b.Limit, b.Unit, b.Note)
			continue
		case b.Note != "":
			fmt.Fprintf(w, "| %s | — | %s %g %s | %s |\n", b.What, op, b.Limit, b.Unit, b.Note)
			continue
		}
		if !b.Pass {
			missed++
		}
		fmt.Fprintf(w, "| %s | %.3f %s | %s %g %s | %s |\n", b.What, b.Value, b.Unit, op, b.Limit, b.Unit, verdict(b.Pass))
	}
	fmt.Fprintf(w, "\n%d of %d budget lines missed", missed, len(r.Budget))
	if n := r.unresolved(); n > 0 {
		fmt.Fprintf(w, "; %d not resolved, decided by the CPU lines", n)
	}
	fmt.Fprintln(w, ".")
}

func (r *results) unresolved() int {
	n := 0
	for _, b := range r.Budget {
		if b.Unresolved {
			n++
		}
	}
	return n
}

func withCI(ratio float64, ci [2]float64) string {
	return fmt.Sprintf("%.3f (%.3f–%.3f)", ratio, ci[0], ci[1])
}

// resolution says whether the start rounds resolved every ratio.
func (r *results) resolution() string {
	if len(r.Start) < 2 {
		return "no case beside runc"
	}
	w := 0.0
	for _, s := range r.Start[1:] {
		w = max(w, (s.CtrCI[1]-s.CtrCI[0])/s.CtrRatio, (s.ClientCI[1]-s.ClientCI[0])/s.ClientRatio)
	}
	if w <= r.Options.Resolve {
		return fmt.Sprintf("resolved, the widest is %.2f%%", 100*w)
	}
	return fmt.Sprintf("**not resolved**, the widest is %.2f%%: run on a quieter machine, or with a larger -max-runs", 100*w)
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "**MISS**"
}
