package main

import "testing"

// A ratio whose interval decides the budget (narrow, or wholly on one side
// of it) is judged by wall time; one that does not, by the CPU its case
// takes beyond runc's.
func TestVerdicts(t *testing.T) {
	resolved, unresolved := [2]float64{1.004, 1.009}, [2]float64{0.95, 1.08}
	for _, tc := range []struct {
		name       string
		ratio      float64
		ci         [2]float64
		cpuExtra   float64
		wantCtr    string
		wantClient string
	}{
		{"resolved, under", 1.006, resolved, 9, "PASS", "PASS"},
		{"resolved, over", 1.02, [2]float64{1.015, 1.024}, -9, "**MISS**", "**MISS**"},
		{"unresolved, CPU under", 1.02, unresolved, 1.5, "PASS (CPU)", "PASS (CPU)"},
		{"unresolved, CPU over", 1.0, unresolved, 3.5, "**MISS** (CPU)", "**MISS** (CPU)"},
		// Wide, but wholly on one side of the budget: wall time decides.
		{"wide, above the budget", 1.09, [2]float64{1.02, 1.16}, -1, "**MISS**", "**MISS**"},
		{"wide, below the budget", 0.96, [2]float64{0.91, 1.009}, 9, "PASS", "PASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startResult{startCase: startCase{Budget: 1.01}, CtrRatio: tc.ratio, CtrCI: tc.ci, ClientRatio: tc.ratio, ClientCI: tc.ci,
				CPU: newSeries([]float64{100}), CPUExtra: tc.cpuExtra, CPULimit: 2}
			ctr, client := s.verdicts(0.01)
			if ctr != tc.wantCtr || client != tc.wantClient {
				t.Errorf("verdicts = %q, %q; want %q, %q", ctr, client, tc.wantCtr, tc.wantClient)
			}
		})
	}
}

func TestMedianCI(t *testing.T) {
	// 1..40: the median is 20.5, and ranks 13 and 28 bound it, as for ratios.
	var xs []float64
	for i := 40; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	m, ci := medianCI(xs)
	if m != 20.5 || ci != [2]float64{13, 28} {
		t.Errorf("medianCI = %v %v, want 20.5 [13 28]", m, ci)
	}
	if m, ci := medianCI(nil); m != 0 || ci != [2]float64{} {
		t.Errorf("medianCI(nil) = %v %v", m, ci)
	}
}
