package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// findLoops lists loop devices that nothing mounts, over an image of ours
// whose owner is dead: a scratch image whose journal is free, or a volume
// image whose lock is free. Loop devices are autoclear and go with their
// last unmount; these are from mounts that failed half-way.
func (g *GC) findLoops() ([]Leftover, error) {
	loops := host.Loops()
	if len(loops) == 0 {
		return nil, nil
	}
	mounted, err := mountedSources()
	if err != nil {
		return nil, err
	}
	var out []Leftover
	for _, l := range loops {
		if mounted[l.Dev()] || hasHolders(l.Name) {
			continue
		}
		if live, ours := g.imageOwner(l.Backing); ours && !live {
			out = append(out, Leftover{Kind: KindLoop, Path: l.Dev(), What: fmt.Sprintf("loop device over %s, not mounted", l.Backing)})
		}
	}
	return out, nil
}

// imageOwner says whether an image is ours, and whether its owner lives.
func (g *GC) imageOwner(path string) (live, ours bool) {
	scratch := g.Dir.path(scratchDir) + "/"
	if rest, ok := strings.CutPrefix(path, scratch); ok {
		parts := strings.Split(rest, "/")
		if len(parts) < 3 {
			return false, false
		}
		return journal.InUse(g.Dir.Journal(parts[0], parts[1])), true
	}
	for _, b := range g.Backends {
		rest, ok := strings.CutPrefix(path, b.Path+"/")
		if !ok {
			continue
		}
		// <namespace>/[@<tenant>/]<volume>/disk.img
		dir := filepath.Dir(rest)
		if n := strings.Count(dir, "/"); n != 1 && n != 2 {
			return false, false
		}
		name := filepath.Base(dir)
		if hidden, ok := volumes.HiddenVolume(name); ok {
			name = hidden
		}
		return anyHeld([]string{b.LockAt(filepath.Join(filepath.Dir(dir), name))}), true
	}
	return false, false
}

func mountedSources() (map[string]bool, error) {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	out := map[string]bool{}
	for _, m := range ms {
		out[m.Source] = true
	}
	return out, nil
}

// hasHolders reports whether a device is in use by another block device
// (device mapper, md).
func hasHolders(name string) bool {
	entries, _ := os.ReadDir(filepath.Join("/sys/block", name, "holders"))
	return len(entries) > 0
}

// detachLoop detaches a loop device, unless it was mounted since or its
// image's owner came to life.
func (g *GC) detachLoop(dev string) error {
	l, ok := host.LoopOf(dev)
	if !ok {
		return nil // detached already
	}
	mounted, err := mountedSources()
	if err != nil {
		return err
	}
	live, _ := g.imageOwner(l.Backing)
	if mounted[dev] || live {
		return ErrLive
	}
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0); err != nil && err != unix.ENXIO {
		return fmt.Errorf("detach %s: %w", dev, err)
	}
	return nil
}
