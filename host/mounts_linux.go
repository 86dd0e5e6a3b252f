package host

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MountsUnder lists what is mounted at or under dir, deepest first, so
// that they can be unmounted in that order. A link at dir has nothing under
// it: one planted where a leftover was must not lead an unmount elsewhere.
// Only dir's parent is resolved, since mountinfo has real paths.
func MountsUnder(dir string) ([]string, error) {
	if fi, err := os.Lstat(dir); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return nil, nil
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		dir = filepath.Join(parent, filepath.Base(dir))
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mounts under %s: %w", dir, err)
	}
	paths := make([]string, len(ms))
	for i, m := range ms {
		paths[i] = m.Mountpoint
	}
	// Mountinfo lists parents before the mounts on top of them.
	slices.Reverse(paths)
	return paths, nil
}

// MountedAt reports whether path is the root of a mount: its device
// differs from its parent's. It takes two stats where reading mountinfo
// takes a scan of every mount, and it is meant for the directories that
// the shim itself mounts in the state dir, never bind mounts of the same
// device.
func MountedAt(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Join(path, ".."), &parent) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Dev != parent.Dev
}
