package containerdtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// MountsUnder lists what is mounted at or under dir.
func MountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(ms))
	for i, m := range ms {
		paths[i] = m.Mountpoint
	}
	return paths, nil
}

// UnmountAll unmounts whatever is mounted at or under dir, deepest first
// and by path. A busy mount is detached, so that dir never stays mounted.
func UnmountAll(dir string) error {
	return mount.UnmountRecursive(dir, unix.MNT_DETACH)
}

// LoopsUnder lists the loop devices whose backing file is under dir, as
// "loopN on FILE".
func LoopsUnder(dir string) []string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var loops []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.HasPrefix(string(bytes.TrimSpace(b)), dir+"/") {
			loops = append(loops, strings.Split(f, "/")[3]+" on "+string(bytes.TrimSpace(b)))
		}
	}
	return loops
}
