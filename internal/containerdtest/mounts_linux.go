package containerdtest

import (
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// MountsUnder lists what is mounted at or under dir, as host.MountsUnder
// does.
func MountsUnder(dir string) ([]string, error) { return host.MountsUnder(dir) }

// UnmountAll unmounts whatever is mounted at or under dir, deepest first
// and by path. A busy mount is detached, so that dir never stays mounted.
func UnmountAll(dir string) error {
	return mount.UnmountRecursive(dir, unix.MNT_DETACH)
}

// LoopsUnder lists the loop devices whose backing file is under dir, as
// "loopN on FILE".
func LoopsUnder(dir string) []string {
	var loops []string
	for _, l := range host.Loops() {
		if strings.HasPrefix(l.Backing, dir+"/") {
			loops = append(loops, l.Name+" on "+l.Backing)
		}
	}
	return loops
}
