package fstree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxRetries bounds how often RemoveAll finds a directory it emptied not
// empty, or a directory replaced by a file, before it gives up: something
// still writes there.
const maxRetries = 16

// RemoveAll removes path and everything under it, like os.RemoveAll, with
// one Cursor's descriptors and one more open whatever the depth, and no
// path longer than path itself handed to the kernel. Symlinks are unlinked, never
// followed. A mount point in the tree is not reached into: RemoveAll stops
// there with ErrFailedPrecondition, for the caller to unmount it first. A
// path that does not exist is success.
//
// The way down is by name, from the directory above; the way back up is by
// "..", checked against the device and inode met on the way down, and each
// directory is checked again before it is removed from its parent
// (ErrChanged when either differs).
func RemoveAll(path string) error {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." || base == "/" {
		return fmt.Errorf("%w: refusing to remove %q", errdefs.ErrInvalidArgument, path)
	}
	if dir == "" {
		dir = "."
	}
	pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: Shorten(dir), Err: err}
	}
	defer unix.Close(pfd)
	return removeAt(pfd, base, path)
}

// removeAt removes name of dirfd and all under it; path names it in errors.
func removeAt(dirfd int, name, path string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	switch {
	case err == nil, errors.Is(err, unix.ENOENT):
		return nil
	case !errors.Is(err, unix.EISDIR):
		return &os.PathError{Op: "unlinkat", Path: Shorten(path), Err: err}
	}
	c, err := OpenAt(dirfd, name, path)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EXDEV):
		return mountPoint(Shorten(path))
	case err != nil:
		return err
	}
	defer c.Close()
	dev, ino := c.ID()
	if err := empty(c); err != nil {
		return err
	}
	c.Close()
	return rmdir(dirfd, name, dev, ino, func() string { return Shorten(path) })
}

// empty removes everything under the directory c is at, and leaves c there.
func empty(c *Cursor) error {
	buf := make([]byte, 8<<10)
	// pending holds, per level below c's start, entries read and not yet
	// removed. The directory's descriptor goes on reading where it stopped
	// after a subdirectory is removed; one reopened by Up starts again from
	// its first entry, and finds only what is left.
	pending := [][]dirent{nil}
	start, retries := c.Depth(), 0
	for {
		d := len(pending) - 1
		if len(pending[d]) == 0 {
			entries, err := readSome(c, buf)
			if err != nil {
				return err
			}
			if len(entries) > 0 {
				pending[d] = entries
				continue
			}
			if c.Depth() == start {
				return nil
			}
			// The current directory is empty: go up and remove it.
			name := c.Name()
			dev, ino := c.ID()
			if err := c.Up(); err != nil {
				return err
			}
			pending = pending[:d]
			err = rmdir(c.FD(), name, dev, ino, func() string { return c.Where(name) })
			if errors.Is(err, unix.ENOTEMPTY) && retries < maxRetries {
				retries++ // written to since it was read: again
				pending[d-1] = append(pending[d-1], dirent{name: name, typ: unix.DT_DIR})
				continue
			}
			if err != nil {
				return err
			}
			continue
		}
		e := pending[d][0]
		pending[d] = pending[d][1:]
		if e.typ != unix.DT_DIR {
			err := unix.Unlinkat(c.FD(), e.name, 0)
			switch {
			case err == nil, errors.Is(err, unix.ENOENT):
				continue
			case !errors.Is(err, unix.EISDIR):
				return &os.PathError{Op: "unlinkat", Path: c.Where(e.name), Err: err}
			}
		}
		err := c.Down(e.name)
		switch {
		case errors.Is(err, unix.ENOENT):
			continue
		case (errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)) && retries < maxRetries:
			retries++ // replaced by a file or link since it was read: unlink that
			pending[d] = append(pending[d], dirent{name: e.name, typ: unix.DT_UNKNOWN})
			continue
		case errors.Is(err, unix.EXDEV):
			return mountPoint(c.Where(e.name))
		case err != nil:
			return err
		}
		pending = append(pending, nil)
	}
}

// rmdir removes the empty directory name of dirfd if it is still the one
// with that device and inode. where names it in an error; it is called only
// then, as it costs the depth.
func rmdir(dirfd int, name string, dev, ino uint64, where func() string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fstatat", Path: where(), Err: err}
	}
	if st.Dev != dev || st.Ino != ino {
		return fmt.Errorf("%w: %s was replaced", ErrChanged, where())
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return &os.PathError{Op: "rmdir", Path: where(), Err: err}
	}
	return nil
}

func mountPoint(where string) error {
	return fmt.Errorf("%w: %s is a mount point: unmount it, then remove again", errdefs.ErrFailedPrecondition, where)
}

// readSome reads the next entries of the current directory of c; none at
// its end.
func readSome(c *Cursor, buf []byte) ([]dirent, error) {
	for {
		n, err := getdents(c, buf)
		if err != nil || n == 0 {
			return nil, err
		}
		if entries := parseDirents(buf[:n], nil); len(entries) > 0 {
			return entries, nil
		}
	}
}
