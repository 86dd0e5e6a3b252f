//go:build linux

// Package timings keeps the shim's record of how long containers' storage
// setup and teardown took, and the cluster agent's record of its fences,
// for persistctl metrics to aggregate.
//
// The shim appends one JSON line per container and operation to
// <state_dir>/metrics/timings.jsonl with O_APPEND and no fsync, off the
// start path: a record costs one small write and is lost, not waited for,
// if the host crashes. When the file passes MaxSize it is renamed to
// timings.jsonl.1 (the one before that is dropped), so the two files hold
// a bounded number of records; readers take both. A rotation lowers the
// counts, which Prometheus reads as a counter reset.
//
// This package must stay free of the Prometheus client: the shim links it,
// and every shim exec would pay for the client's init.
//
// Linux only, as package state, which names its directory, is.
package timings

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd-persist/containerd-persist/state"
)

// Operations recorded.
const (
	Setup    = "setup"
	Teardown = "teardown"
	// Fence is a cluster lock's fence: its container stopped and its
	// volume unmounted, because the lease or the shim was lost.
	Fence = "fence"
)

// Outcomes of a fence.
const (
	Stopped = "stopped" // in time
	Late    = "late"    // after the lease's deadline
	Failed  = "failed"  // something could not be stopped or unmounted
)

// MaxSize is the size past which the record file is rotated: about 8,000
// records.
const MaxSize = 1 << 20

// Record is one container's setup or teardown.
type Record struct {
	Op        string  `json:"op"`
	Namespace string  `json:"namespace"`
	Container string  `json:"container"`
	Class     string  `json:"class,omitempty"`
	Seconds   float64 `json:"seconds"`
	// Scratch are the class's scratch paths, in order: the scratch areas
	// under <state_dir>/scratch/<namespace>/<container>/<i> are named by
	// their index i.
	Scratch []string `json:"scratch,omitempty"`

	// Cluster is how much of a setup's Seconds its cluster locks took on
	// the start's path: the wait for the agent's lock, the fencing token's
	// record, the question whether the lease lives.
	Cluster float64 `json:"cluster_seconds,omitempty"`

	// A fence's volume, and its outcome.
	Tenant  string `json:"tenant,omitempty"`
	Volume  string `json:"volume,omitempty"`
	Backend string `json:"backend,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

// Path is the record file of a state dir.
func Path(stateDir string) string {
	return filepath.Join(state.Dir(stateDir).Metrics(), "timings.jsonl")
}

// Append adds r to the record file of stateDir.
func Append(stateDir string, r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	p := Path(stateDir)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("record %s of %s/%s: %w", r.Op, r.Namespace, r.Container, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("record %s of %s/%s: %w", r.Op, r.Namespace, r.Container, err)
	}
	// One write: with O_APPEND, concurrent shims' lines do not interleave.
	_, err = f.Write(line)
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() > MaxSize {
			err = os.Rename(p, p+".1")
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record %s of %s/%s: %w", r.Op, r.Namespace, r.Container, err)
	}
	return nil
}

// Read returns the records of stateDir, oldest first. Lines that do not
// parse (one cut short by a crash) are skipped; missing files hold none.
func Read(stateDir string) ([]Record, error) {
	var out []Record
	p := Path(stateDir)
	for _, name := range []string{p + ".1", p} {
		b, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read setup timings: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), MaxSize)
		for sc.Scan() {
			var r Record
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Op != "" {
				out = append(out, r)
			}
		}
	}
	return out, nil
}
