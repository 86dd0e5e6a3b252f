package overlay

import (
	"fmt"
	"strings"
)

// MoveUpper points the overlay mount of a container's root at a persistent
// upper and work directory, keeping its lower layers and any other options
// (idmap among them). The snapshot's own upper is left unused.
//
// index=off is forced: with the index on, the kernel ties the upper to the
// lower layers it was first mounted over, and a new image would fail with
// ESTALE. With it off the layer carries over to a newer image.
func MoveUpper(mountType string, options []string, upper, work string) ([]string, error) {
	if mountType != "overlay" {
		return nil, fmt.Errorf("machine mode needs an overlay root filesystem, got %q: use the overlayfs snapshotter", mountType)
	}
	out := make([]string, 0, len(options)+1)
	for _, o := range options {
		switch {
		case strings.HasPrefix(o, "upperdir="), strings.HasPrefix(o, "workdir="), strings.HasPrefix(o, "index="):
			continue
		case o == "ro":
			return nil, fmt.Errorf("machine mode needs a writable root, but the snapshot is read-only")
		}
		out = append(out, o)
	}
	return append(out, "upperdir="+upper, "workdir="+work, "index=off"), nil
}
