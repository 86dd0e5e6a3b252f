package overlay

import (
	"errors"
	"fmt"
	"github.com/containerd-persist/containerd-persist/host"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Lower is the image's content at a scratch path, held open: the directory
// at that path of each image layer that shows through there, topmost first.
type Lower struct {
	Owner   host.Owner // of the topmost directory; DefaultOwner if none
	Options []string   // overlay options the layers need
	dirs    []*os.File
	content bool // a directory has an entry
}

// empty reports whether no layer has anything at the path: it is missing,
// or an empty directory in each.
func (l *Lower) empty() bool { return !l.content }

// Close closes the directories.
func (l *Lower) Close() error {
	var errs []error
	for _, d := range l.dirs {
		errs = append(errs, d.Close())
	}
	l.dirs = nil
	return errors.Join(errs...)
}

// lowerdir is the overlay option that stacks the directories, each named
// by its descriptor.
func (l *Lower) lowerdir() string {
	paths := make([]string, len(l.dirs))
	for i, d := range l.dirs {
		paths[i] = fdPath(d)
	}
	return "lowerdir=" + strings.Join(paths, ":")
}

// OpenLower opens the image's content at path: the directory at path in
// each layer that shows through there, topmost first, as LookupOwner walks
// them. Each is opened beneath its layer without following any symlink, and
// stays open until Close, so the overlay made of them takes exactly these
// directories, whatever is planted on the way to path later.
//
// root is the container's root directory, read as the only layer when
// rootfs has no mounts. A symlink on the way to path in the topmost layer
// that has it is ErrSymlink; a non-directory at path is an error.
func OpenLower(rootfs []mount.Mount, root, path string) (_ *Lower, retErr error) {
	dirs := layers(rootfs)
	if len(rootfs) == 0 {
		dirs = []string{root}
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%w: the image's layers under scratch %s are unknown for a root of %s mounts: use the overlayfs or native snapshotter",
			errdefs.ErrNotImplemented, path, rootfs[0].Type)
	}
	l := &Lower{Owner: DefaultOwner, Options: overlayOptions(rootfs)}
	defer func() {
		if retErr != nil {
			l.Close()
		}
	}()
	for _, layer := range dirs {
		d, st, err := openDirBeneath(layer, path)
		switch {
		case errors.Is(err, unix.ENOENT):
			if opaqueAbove(layer, path) {
				return l, nil // the layer hides what is below
			}
			continue
		case errors.Is(err, unix.ENOTDIR):
			return l, nil // a file or whiteout on the way hides the rest
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
			if len(l.dirs) > 0 {
				return l, nil // the directory above hides the link
			}
			return nil, ErrSymlink
		case err != nil:
			return nil, fmt.Errorf("open %s in image layer %s: %w", path, layer, err)
		case d == nil && len(l.dirs) > 0:
			return l, nil // a non-directory below a directory is hidden by it
		case st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0:
			return l, nil // overlay whiteout
		case d == nil:
			return nil, fmt.Errorf("%w: %s is not a directory in the image: a scratch path must be a directory or missing",
				errdefs.ErrInvalidArgument, path)
		}
		if len(l.dirs) == 0 {
			l.Owner = ownerOf(st)
		}
		l.dirs = append(l.dirs, d)
		if l.empty() {
			names, err := d.Readdirnames(1)
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read %s in image layer %s: %w", path, layer, err)
			}
			l.content = len(names) > 0
		}
		if isOpaque(int(d.Fd())) || opaqueAbove(layer, path) {
			return l, nil
		}
	}
	return l, nil
}

// openDirBeneath opens path inside root, refusing any symlink on the way,
// and stats it. A directory is returned open for reading; anything else is
// only stat-ed, never opened: a device node in a layer is not for the host
// to open.
func openDirBeneath(root, path string) (*os.File, *unix.Stat_t, error) {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(rootfd)
	rel := strings.TrimPrefix(path, "/")
	if rel == "" {
		rel = "."
	}
	pathfd, err := unix.Openat2(rootfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH,
	})
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(pathfd)
	var st unix.Stat_t
	if err := unix.Fstat(pathfd, &st); err != nil {
		return nil, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, &st, nil
	}
	// Reopened through the O_PATH descriptor itself: nothing is looked up
	// by name again.
	fd, err := unix.Openat(pathfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), root+path), &st, nil
}

func ownerOf(st *unix.Stat_t) host.Owner {
	mode := fs.FileMode(st.Mode & 0o777)
	if st.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return host.Owner{Mode: mode, UID: int(st.Uid), GID: int(st.Gid)}
}

// overlayOptions are the options of the image's root overlay that a scratch
// overlay over its layers needs too: with userxattr, whiteouts and opaque
// directories are marked in user.* xattrs.
func overlayOptions(rootfs []mount.Mount) []string {
	var opts []string
	for _, m := range rootfs {
		if m.Type == "overlay" && slices.Contains(m.Options, "userxattr") {
			opts = append(opts, "userxattr")
		}
	}
	// As containerd's overlay snapshotter: the index would tie the upper to
	// these lowers, which no later mount reuses.
	if _, err := os.Stat("/sys/module/overlay/parameters/index"); err == nil {
		opts = append(opts, "index=off")
	}
	return opts
}

// fdPath names an open file by its descriptor: the kernel resolves it to
// the file itself, never by its name.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
