package fstree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MaxOpen is the most directory descriptors a Cursor keeps open (Up opens
// one more for a moment). Shallower levels are closed and reached again by
// "..". It is far below the usual
// RLIMIT_NOFILE, and deep enough that a tree of ordinary depth is walked
// without reopening anything.
const MaxOpen = 64

// level is one directory of a Cursor's chain.
type level struct {
	name     string // in its parent; "." for the root
	dev, ino uint64 // what it was when entered
	fd       int    // -1 while closed
}

// Cursor is a position in a directory tree: the chain of directories from
// its root down to the current one. Only the deepest MaxOpen of them are
// open; the others are known by name and identity.
type Cursor struct {
	root   string // for errors only
	levels []level
	open   int // descriptors open, always those of the deepest levels
}

// Open returns a Cursor at the directory root. A symlink at root is not
// followed.
func Open(root string) (*Cursor, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: Shorten(root), Err: err}
	}
	return newCursor(root, fd)
}

// OpenAt returns a Cursor at directory name of dirfd, entered as Down
// enters one: not through a symlink, not into another mount. root names it
// in errors.
func OpenAt(dirfd int, name, root string) (*Cursor, error) {
	fd, err := openDir(dirfd, name)
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: Shorten(root), Err: err}
	}
	return newCursor(root, fd)
}

func newCursor(root string, fd int) (*Cursor, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: Shorten(root), Err: err}
	}
	c := &Cursor{root: root}
	c.push(level{name: ".", dev: st.Dev, ino: st.Ino, fd: fd})
	return c, nil
}

// openDir opens directory name of dirfd for reading, by that one name: a
// symlink there fails with ELOOP, a mount on it with EXDEV, another kind of
// file with ENOTDIR, and a name that is not one component with EINVAL.
func openDir(dirfd int, name string) (int, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return -1, unix.EINVAL
	}
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	for {
		fd, err := unix.Openat2(dirfd, name, how)
		// EAGAIN: a rename elsewhere on the system raced the lookup.
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err == unix.ENOTDIR {
			// O_DIRECTORY fails a symlink with ENOTDIR: say what it is.
			var st unix.Stat_t
			if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = unix.ELOOP
			}
		}
		return fd, err
	}
}

// FD is the open descriptor of the current directory. It stays valid until
// the next Down, Up or Close.
func (c *Cursor) FD() int { return c.levels[len(c.levels)-1].fd }

// Depth is how many levels the current directory is below the root.
func (c *Cursor) Depth() int { return len(c.levels) - 1 }

// Name is the current directory's name in its parent; "." at the root.
func (c *Cursor) Name() string { return c.levels[len(c.levels)-1].name }

// ID is the device and inode the current directory had when entered.
func (c *Cursor) ID() (dev, ino uint64) {
	l := c.levels[len(c.levels)-1]
	return l.dev, l.ino
}

// Down enters the directory name of the current one, not through a symlink
// and not into another mount: those fail with ELOOP and EXDEV (wrapped), a
// name that is not a directory with ENOTDIR.
func (c *Cursor) Down(name string) error {
	fd, err := openDir(c.FD(), name)
	if err != nil {
		return &os.PathError{Op: "openat2", Path: c.Where(name), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return &os.PathError{Op: "fstat", Path: c.Where(name), Err: err}
	}
	c.push(level{name: name, dev: st.Dev, ino: st.Ino, fd: fd})
	return nil
}

// push adds a level with its descriptor open, and closes the shallowest
// open one when more than MaxOpen are.
func (c *Cursor) push(l level) {
	c.levels = append(c.levels, l)
	c.open++
	if c.open > MaxOpen {
		shallowest := &c.levels[len(c.levels)-c.open]
		unix.Close(shallowest.fd)
		shallowest.fd = -1
		c.open--
	}
}

// Up goes back to the parent of the current directory. A parent whose
// descriptor was closed is opened again by ".." and must have the device and
// inode it had when entered; else Up fails with ErrChanged and the Cursor
// stays where it was.
func (c *Cursor) Up() error {
	n := len(c.levels)
	if n < 2 {
		return errors.New("fstree: Up at the root of " + Shorten(c.root))
	}
	top, parent := &c.levels[n-1], &c.levels[n-2]
	if parent.fd < 0 {
		fd, err := unix.Openat(top.fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "openat ..", Path: c.Where(""), Err: err}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "fstat ..", Path: c.Where(""), Err: err}
		}
		if st.Dev != parent.dev || st.Ino != parent.ino {
			unix.Close(fd)
			return fmt.Errorf("%w: %s was moved", ErrChanged, c.Where(""))
		}
		parent.fd = fd
		c.open++
	}
	unix.Close(top.fd)
	c.open--
	c.levels = c.levels[:n-1]
	return nil
}

// Path is the current directory's slash path from the root, "." at the
// root. It costs the depth.
func (c *Cursor) Path() string { return c.path("") }

// path is Path joined with name, when not empty.
func (c *Cursor) path(name string) string {
	if len(c.levels) == 1 {
		if name == "" {
			return "."
		}
		return name
	}
	var b strings.Builder
	for _, l := range c.levels[1:] {
		b.WriteString(l.name)
		b.WriteByte('/')
	}
	b.WriteString(name)
	return strings.TrimSuffix(b.String(), "/")
}

// Where names name in the current directory for an error: the root as it
// was given, then the path below it, cut with Shorten.
func (c *Cursor) Where(name string) string {
	return Shorten(filepath.Join(c.root, c.path(name)))
}

// Close closes the descriptors the Cursor holds.
func (c *Cursor) Close() {
	for i := range c.levels {
		if c.levels[i].fd >= 0 {
			unix.Close(c.levels[i].fd)
			c.levels[i].fd = -1
		}
	}
	c.levels, c.open = nil, 0
}
