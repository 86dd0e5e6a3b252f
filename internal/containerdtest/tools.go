//go:build linux

package containerdtest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Tools are the binaries scripts/install-deps.sh installed.
type Tools struct {
	Dir        string // all of them
	Containerd string // containerd, ctr and containerd-shim-runc-v2
	Runc       string // runc
	Crictl     string // crictl
}

// FindTools finds the tools in $TOOLS_DIR (default
// /var/cache/containerd-persist/tools), in the versions that
// $CONTAINERD_VERSION, $RUNC_VERSION and $CRICTL_VERSION name (default
// those install-deps.sh installs). containerd, ctr and runc must be there.
func FindTools() (Tools, error) {
	dir := envOr("TOOLS_DIR", "/var/cache/containerd-persist/tools")
	t := Tools{
		Dir:        dir,
		Containerd: filepath.Join(dir, "containerd-"+envOr("CONTAINERD_VERSION", "v2.4.2")),
		Runc:       filepath.Join(dir, "runc-"+envOr("RUNC_VERSION", "v1.4.3")),
		Crictl:     filepath.Join(dir, "crictl-"+envOr("CRICTL_VERSION", "v1.37.0")),
	}
	for _, p := range []string{filepath.Join(t.Containerd, "containerd"), t.Ctr(), filepath.Join(t.Runc, "runc")} {
		if _, err := os.Stat(p); err != nil {
			return t, fmt.Errorf("%w: run scripts/install-deps.sh (make deps)", err)
		}
	}
	return t, nil
}

// Ctr is the ctr binary.
func (t Tools) Ctr() string { return filepath.Join(t.Containerd, "ctr") }

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
