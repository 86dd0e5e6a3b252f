package shim

import (
	"testing"

	"github.com/containerd-persist/containerd-persist/metrics/timings"
)

// TestTeardownRecordedOnce: a container's release is recorded once, by the
// teardown that released it; `shim delete` after it finds nothing to do
// and records nothing.
func TestTeardownRecordedOnce(t *testing.T) {
	e := newSetupEnv(t)
	cfg := e.config(t, twoScratch)
	if err := e.setup(t, cfg, e.container("c1", nil)); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the task's delete, then shim delete
		if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
			t.Fatal(err)
		}
	}
	e.assertReleased(t, "c1") // a third teardown
	records, err := timings.Read(e.state)
	mustT(t, err)
	teardowns := 0
	for _, r := range records {
		if r.Op == timings.Teardown && r.Container == "c1" {
			teardowns++
		}
	}
	if teardowns != 1 {
		t.Errorf("%d teardowns of c1 recorded, want 1: %+v", teardowns, records)
	}
}
