package shim

import (
	"path/filepath"
	"time"

	"github.com/containerd/log"

	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/state"
)

// recordSetup records how long container's storage setup took, and how
// much of it its cluster locks took, for persistctl metrics, off the start
// path: the write happens in the background, one O_APPEND line and no
// fsync (see package timings).
func (s *storage) recordSetup(req *setupRequest, start time.Time) {
	r := timings.Record{
		Op:        timings.Setup,
		Namespace: req.container.namespace,
		Container: req.container.id,
		Class:     req.class.Name,
		Seconds:   time.Since(start).Seconds(),
		Cluster:   s.cluster.took(state.Dir(req.cfg.StateDir).Journal(req.container.namespace, req.container.id)).Seconds(),
	}
	for _, sc := range req.class.Scratch {
		r.Scratch = append(r.Scratch, sc.Path)
	}
	stateDir := req.cfg.StateDir
	go func() {
		if err := timings.Append(stateDir, r); err != nil {
			log.L.WithError(err).Warn("record setup time")
		}
	}()
}

// recordTeardown records how long releasing the storage of container id
// took. The journal at <state_dir>/journal/<namespace>/<id> names the
// state dir. It writes at once: the shim may exit right after a delete.
func recordTeardown(journalPath, ns, id string, start time.Time) {
	stateDir := filepath.Dir(filepath.Dir(filepath.Dir(journalPath)))
	r := timings.Record{Op: timings.Teardown, Namespace: ns, Container: id, Seconds: time.Since(start).Seconds()}
	if err := timings.Append(stateDir, r); err != nil {
		log.L.WithError(err).Warn("record teardown time")
	}
}
