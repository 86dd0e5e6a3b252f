package main

import (
	"strings"

	"github.com/containerd-persist/containerd-persist/metrics/timings"
)

// shimTimings reads what the shim itself recorded of the start part's
// containers (see package timings): how long each one's storage setup and
// teardown took, in ms, by case. A container's ID names its case:
// <case>-ctr-<n> or <case>-go-<n>. Only a container's first record of each
// kind counts: the shim also records the teardown that containerd's
// cleanup after its exit asks for, which finds nothing left to release.
func shimTimings(stateDir string) (setup, teardown map[string][]float64, err error) {
	records, err := timings.Read(stateDir)
	if err != nil {
		return nil, nil, err
	}
	setup, teardown = map[string][]float64{}, map[string][]float64{}
	seen := map[[2]string]bool{}
	for _, r := range records {
		name, ok := caseOf(r.Container)
		if !ok || seen[[2]string{r.Op, r.Container}] {
			continue
		}
		seen[[2]string{r.Op, r.Container}] = true
		switch r.Op {
		case timings.Setup:
			setup[name] = append(setup[name], r.Seconds*1000)
		case timings.Teardown:
			teardown[name] = append(teardown[name], r.Seconds*1000)
		}
	}
	return setup, teardown, nil
}

// caseOf is the case of a start part's container ID.
func caseOf(id string) (string, bool) {
	for _, client := range []string{"-ctr-", "-go-"} {
		if i := strings.LastIndex(id, client); i > 0 && strings.Trim(id[i+len(client):], "0123456789") == "" {
			return id[:i], true
		}
	}
	return "", false
}
