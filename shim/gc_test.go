package shim

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestGCHold: a hold raises GOGC and bounds the heap with a memory limit
// above what the process uses; holds nest, and the last release puts both
// settings back.
func TestGCHold(t *testing.T) {
	percent := debug.SetGCPercent(40)
	limit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	var g heldGC
	g.hold()
	g.hold()
	if got := debug.SetGCPercent(gcHeldPercent); got != gcHeldPercent {
		t.Fatalf("GOGC while held = %d, want %d", got, gcHeldPercent)
	}
	held := debug.SetMemoryLimit(-1)
	if used := int64(goMemory()); held == math.MaxInt64 || held < used+gcHeadroom/2 {
		t.Fatalf("memory limit while held = %d, want a limit above the %d bytes in use", held, used)
	}
	g.release()
	if got := debug.SetMemoryLimit(-1); got != held {
		t.Fatalf("memory limit after one of two releases = %d, want it still held at %d", got, held)
	}
	g.release()
	if got := debug.SetGCPercent(40); got != 40 {
		t.Errorf("GOGC after the last release = %d, want 40 back", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit after the last release = %d, want none", got)
	}
	g.release() // one release too many changes nothing
	if got := debug.SetGCPercent(40); got != 40 {
		t.Errorf("GOGC after a release too many = %d, want 40", got)
	}
}
