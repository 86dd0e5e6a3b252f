package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	persist "github.com/containerd-persist/containerd-persist/shim"
)

// annotationFailpoint names where to fail or die: "create:N:error",
// "create:N:kill", "delete:N:error" or "delete:N:kill", after step N of a
// container's storage setup or cleanup.
const annotationFailpoint = "persist.containerd.io/failpoint"

// failpointOf returns the hook of a container's failpoint annotation, nil
// when it has none.
func failpointOf(annotations map[string]string) (persist.Hook, error) {
	v, ok := annotations[annotationFailpoint]
	if !ok {
		return nil, nil
	}
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("failpoint %q: want phase:step:action", v)
	}
	phase, action := parts[0], parts[2]
	step, err := strconv.Atoi(parts[1])
	if err != nil || step < 0 || (phase != "create" && phase != "delete") || (action != "error" && action != "kill") {
		return nil, fmt.Errorf("failpoint %q: want create|delete:N:error|kill", v)
	}
	return func(p string, n int) error {
		if p != phase || n != step {
			return nil
		}
		if action == "kill" {
			unix.Kill(os.Getpid(), unix.SIGKILL)
			select {}
		}
		return fmt.Errorf("failpoint after %s step %d", phase, n)
	}, nil
}
