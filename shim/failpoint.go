package shim

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/journal"
)

// annotationFailpoint asks a test build of the shim to fail or die after
// step N of a container's storage setup or cleanup:
// "create:N:error", "create:N:kill", "delete:N:error" or "delete:N:kill".
// Release builds ignore it (see failpointsEnabled).
const annotationFailpoint = "persist.containerd.io/failpoint"

type failpoint struct {
	phase  string // create or delete
	step   int
	action string // error or kill
}

// parseFailpoint reads the failpoint annotation; nil when there is none or
// the build has no failpoints.
func parseFailpoint(annotations map[string]string) (*failpoint, error) {
	v, ok := annotations[annotationFailpoint]
	if !ok || !failpointsEnabled {
		return nil, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("failpoint %q: want phase:step:action", v)
	}
	step, err := strconv.Atoi(parts[1])
	fp := &failpoint{phase: parts[0], step: step, action: parts[2]}
	if err != nil || step < 0 || (fp.phase != "create" && fp.phase != "delete") || (fp.action != "error" && fp.action != "kill") {
		return nil, fmt.Errorf("failpoint %q: want create|delete:N:error|kill", v)
	}
	return fp, nil
}

// at fires the failpoint if it is set for step n of phase.
func (f *failpoint) at(phase string, n int) error {
	if f == nil || f.phase != phase || f.step != n {
		return nil
	}
	if f.action == "kill" {
		unix.Kill(os.Getpid(), unix.SIGKILL)
		select {}
	}
	return fmt.Errorf("failpoint after %s step %d", phase, n)
}

// failpointUndoer fires a delete failpoint during a cleanup.
type failpointUndoer struct {
	journal.Undoer
	fp *failpoint
}

func (u failpointUndoer) BeforeUndo(done int) error { return u.fp.at("delete", done) }
