package shim

import (
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// Garbage collection is held off while a container starts. Each shim
// process is fresh (`shim start`, the daemon, `shim delete`), and
// containerd's shim library sets GOGC to 40 as it starts, which a fresh
// process's heap reaches at once. Unheld, the daemon collected three or
// four times per container (as it started, while Create read the spec and
// the config, and twice before Delete), and `shim start` and `shim delete`
// once each: all on the path that a container's start or delete waits
// for. The hold is taken where each process first runs code of ours; the
// daemon's ends gcAfterStart after the task's start, and collects then.
//
// GOGC is raised, not turned off: turning it off waits for a running cycle
// to end. A memory limit of what the process uses now plus gcHeadroom
// bounds the heap meanwhile.
const (
	gcHeldPercent = 1 << 20
	gcHeadroom    = 64 << 20
	// gcAfterStart is how long after a task's start the hold ends: past the
	// start path, and past the whole life of a short task.
	gcAfterStart = time.Second
)

// gcHold is the process's hold on garbage collection. The GC settings are
// the process's, so there is one.
var gcHold heldGC

type heldGC struct {
	mu      sync.Mutex
	holds   int
	percent int   // the GOGC to go back to
	limit   int64 // the memory limit to go back to
}

// hold holds garbage collection off until release is called as many times
// as hold was.
func (g *heldGC) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.holds++
	if g.holds > 1 {
		return
	}
	g.percent = debug.SetGCPercent(gcHeldPercent)
	g.limit = debug.SetMemoryLimit(-1) // reads it
	if limit := int64(goMemory()) + gcHeadroom; limit < g.limit {
		debug.SetMemoryLimit(limit)
	}
}

// release ends a hold; the last one puts GOGC and the memory limit back
// and collects what the held time left, returning its memory to the system.
func (g *heldGC) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holds == 0 {
		return
	}
	g.holds--
	if g.holds > 0 {
		return
	}
	debug.SetGCPercent(g.percent)
	debug.SetMemoryLimit(g.limit)
	debug.FreeOSMemory()
}

// releaseAfter ends a hold after d, off the caller's path: a collection
// that the release starts never delays the caller.
func (g *heldGC) releaseAfter(d time.Duration) {
	time.AfterFunc(d, g.release)
}

// goMemory is the memory of the Go runtime that a memory limit is compared
// with. runtime/metrics would read it without stopping the world, but its
// package init alone costs every exec of the shim more than this does once.
func goMemory() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Sys - m.HeapReleased
}
