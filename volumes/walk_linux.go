package volumes

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"
)

// entry is one file met by walk. Its directory stays open while fn runs, so
// fn reaches the file by (dirfd, name) and never by a path a container could
// have changed.
type entry struct {
	dirfd int
	name  string // in dirfd; "." for the root
	rel   string // slash path from the root; "." for the root
	st    unix.Stat_t
}

// walk visits root and then everything under it, each directory before its
// content, in name order. It never follows a symlink, and it does not go into
// another filesystem mounted under root. Files that vanish while it walks (a
// live volume) are skipped.
func walk(root string, fn func(*entry) error) error {
	f, err := os.OpenFile(root, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	e := entry{dirfd: int(f.Fd()), name: ".", rel: "."}
	if err := unix.Fstat(e.dirfd, &e.st); err != nil {
		return &os.PathError{Op: "fstat", Path: root, Err: err}
	}
	if err := fn(&e); err != nil {
		return err
	}
	return walkDir(f, ".", e.st.Dev, fn)
}

func walkDir(dir *os.File, rel string, dev uint64, fn func(*entry) error) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", rel, err)
	}
	slices.Sort(names)
	dirfd := int(dir.Fd())
	for _, name := range names {
		e := entry{dirfd: dirfd, name: name, rel: path.Join(rel, name)}
		if err := unix.Fstatat(dirfd, name, &e.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return &os.PathError{Op: "fstatat", Path: e.rel, Err: err}
		}
		if err := fn(&e); err != nil {
			return err
		}
		if e.st.Mode&unix.S_IFMT != unix.S_IFDIR || e.st.Dev != dev {
			continue
		}
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue // replaced since the stat
		}
		if err != nil {
			return &os.PathError{Op: "openat", Path: e.rel, Err: err}
		}
		sub := os.NewFile(uintptr(fd), e.rel)
		err = walkDir(sub, e.rel, dev, fn)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// fileID is what makes hard links the same file.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{st.Dev, st.Ino} }

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
