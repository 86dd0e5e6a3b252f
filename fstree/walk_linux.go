package fstree

import (
	"errors"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Entry is one file met by Walk.
type Entry struct {
	// Dir is the open directory that holds the entry (for the root, the
	// root itself): the file is reached by (Dir, Name), never by a path
	// that a container could change or make too long.
	Dir  int
	Name string      // in Dir; "." for the root
	Stat unix.Stat_t // of the entry itself, not of what a symlink names
	c    *Cursor
}

// Path is the entry's slash path from the root, "." for the root. It costs
// the entry's depth: call it only where the name is needed.
func (e *Entry) Path() string {
	if e.Name == "." {
		return "."
	}
	return e.c.path(e.Name)
}

// Where names the entry for an error: the root as given to Walk, then the
// path below it, cut with Shorten.
func (e *Entry) Where() string {
	if e.Name == "." {
		return e.c.Where("")
	}
	return e.c.Where(e.Name)
}

// Walk visits root and then everything under it, each directory before its
// content, in name order, calling fn with each. It never follows a symlink,
// it does not go into another mount under root (the mount point itself is
// visited), and it holds one Cursor's descriptors whatever the depth.
// Files that vanish while it walks (a live volume) are skipped. fn must not
// keep the Entry it is given.
func Walk(root string, fn func(*Entry) error) error {
	c, err := Open(root)
	if err != nil {
		return err
	}
	defer c.Close()
	e := &Entry{Dir: c.FD(), Name: ".", c: c}
	if err := unix.Fstat(e.Dir, &e.Stat); err != nil {
		return &os.PathError{Op: "fstat", Path: Shorten(root), Err: err}
	}
	if err := fn(e); err != nil {
		return err
	}
	dev := e.Stat.Dev
	buf := make([]byte, 32<<10)
	names, err := readNames(c, buf)
	if err != nil {
		return err
	}
	// pending holds, per level of c, the names still to visit there; left
	// counts them all, so that the walk ends at the last name without
	// climbing back up a deep chain for nothing.
	pending, left := [][]string{names}, len(names)
	for left > 0 {
		d := len(pending) - 1
		if len(pending[d]) == 0 {
			if err := c.Up(); err != nil {
				return err
			}
			pending = pending[:d]
			continue
		}
		name := pending[d][0]
		pending[d] = pending[d][1:]
		left--
		*e = Entry{Dir: c.FD(), Name: name, c: c}
		if err := unix.Fstatat(e.Dir, name, &e.Stat, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return &os.PathError{Op: "fstatat", Path: c.Where(name), Err: err}
		}
		if err := fn(e); err != nil {
			return err
		}
		if e.Stat.Mode&unix.S_IFMT != unix.S_IFDIR || e.Stat.Dev != dev {
			continue
		}
		if err := c.Down(name); err != nil {
			switch {
			case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
				continue // removed or replaced since the stat
			case errors.Is(err, unix.EXDEV):
				continue // a mount point of the same filesystem: a bind mount
			}
			return err
		}
		names, err := readNames(c, buf)
		if err != nil {
			return err
		}
		pending = append(pending, names)
		left += len(names)
	}
	return nil
}

// readNames lists the current directory of c, sorted.
func readNames(c *Cursor, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := getdents(c, buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}

// getdents reads the next entries of the current directory of c into buf;
// 0 at its end.
func getdents(c *Cursor, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(c.FD(), buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "getdents", Path: c.Where(""), Err: err}
		}
		return n, nil
	}
}
