package overlay

import (
	"errors"
	"fmt"
	"github.com/containerd-persist/containerd-persist/host"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"
)

// LookupOwner finds the owner of path in the image that rootfs mounts,
// looking through the layers from the top. It returns DefaultOwner when no
// layer has the path or a layer deletes it (a whiteout), and DefaultOwner
// with ErrSymlink when a symlink is on the way: setup never follows a link
// out of a layer.
func LookupOwner(rootfs []mount.Mount, path string) (host.Owner, error) {
	for _, layer := range layers(rootfs) {
		var st unix.Stat_t
		err := statBeneath(layer, path, &st)
		switch {
		case errors.Is(err, unix.ENOENT):
			if opaqueAbove(layer, path) {
				return DefaultOwner, nil // the layer hides what is below
			}
			continue
		case errors.Is(err, unix.ENOTDIR):
			return DefaultOwner, nil // a file or whiteout above hides the rest
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
			return DefaultOwner, ErrSymlink
		case err != nil:
			return host.Owner{}, fmt.Errorf("look up %s in image layer %s: %w", path, layer, err)
		case st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0:
			return DefaultOwner, nil // overlay whiteout
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return host.Owner{}, fmt.Errorf("%s is not a directory in the image: a scratch or volume path must be a directory or missing", path)
		}
		mode := fs.FileMode(st.Mode & 0o777)
		if st.Mode&unix.S_ISVTX != 0 {
			mode |= fs.ModeSticky
		}
		return host.Owner{Mode: mode, UID: int(st.Uid), GID: int(st.Gid)}, nil
	}
	return DefaultOwner, nil
}

// statBeneath stats path inside root, refusing any symlink on the way.
func statBeneath(root, path string, st *unix.Stat_t) error {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	fd, err := unix.Openat2(rootfd, strings.TrimPrefix(path, "/"), &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fstat(fd, st)
}

// opaqueAbove reports whether a directory on the way to path in layer is
// opaque: overlayfs then shows nothing of that directory from lower layers.
func opaqueAbove(layer, path string) bool {
	rootfd, err := unix.Open(layer, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(rootfd)
	for dir := strings.TrimPrefix(filepath.Dir(path), "/"); dir != "." && dir != ""; dir = filepath.Dir(dir) {
		fd, err := unix.Openat2(rootfd, dir, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
		})
		if err != nil {
			continue
		}
		opaque := isOpaque(fd)
		unix.Close(fd)
		if opaque {
			return true
		}
	}
	return false
}

// isOpaque reports whether the directory open as fd is opaque: overlayfs
// shows nothing of it from lower layers.
func isOpaque(fd int) bool {
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		buf := make([]byte, 1)
		if n, err := unix.Fgetxattr(fd, name, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// layers lists the directories of an image's root, topmost first: an
// overlay's upper and lower dirs, or a bind mount's source.
func layers(rootfs []mount.Mount) []string {
	var dirs []string
	for _, m := range rootfs {
		switch m.Type {
		case "overlay":
			var lower []string
			for _, o := range m.Options {
				if v, ok := strings.CutPrefix(o, "upperdir="); ok {
					dirs = append(dirs, v)
				} else if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
					lower = strings.Split(v, ":")
				}
			}
			dirs = append(dirs, lower...)
		case "bind", "rbind":
			dirs = append(dirs, m.Source)
		}
	}
	return dirs
}
