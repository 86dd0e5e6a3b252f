package shim

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// lowerOf identifies the image layers under a machine root as this host has
// them, so that containerd is asked for the root's image only when they
// change: each of the root's lower directories, with its device, inode and
// change time, hashed. A directory that was removed and made again at the
// same path (snapshot IDs start over when containerd's metadata is wiped) is
// a new one. It is "" when the layers cannot be told, and then containerd is
// asked, as for a change.
func lowerOf(root mount.Mount) string {
	var dirs []string
	for _, o := range root.Options {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			dirs = append(dirs, strings.Split(v, ":")...)
		} else if v, ok := strings.CutPrefix(o, "lowerdir+="); ok {
			dirs = append(dirs, v)
		}
	}
	if root.Type != "overlay" || len(dirs) == 0 {
		return ""
	}
	h := sha256.New()
	for _, dir := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			return ""
		}
		fmt.Fprintf(h, "%q %d %d %d.%09d\n", dir, st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
