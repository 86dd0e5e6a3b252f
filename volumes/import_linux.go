package volumes

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
)

// importer writes the entries of a tar stream under root. Every entry is
// made by (parent directory descriptor, name), with parents entered one
// name at a time from root, never through a symlink or into a mount
// (fstree.Cursor): an archive cannot write outside root, nor through a link
// that an earlier entry made, and no path is handed to the kernel, so names
// may be longer than PATH_MAX. The cursor stays at the last entry's parent;
// archives list a directory's content after it, so the next entry's parent
// is most often the same or one level away.
type importer struct {
	root  string
	dir   position
	times map[fileID]time.Time // directory times, set once all is written
	buf   []byte
}

// position is a cursor and the slash path from root it is at.
type position struct {
	c  *fstree.Cursor
	at string // "" at root
}

// importTree extracts tr into the empty tree at root; first is the entry
// already read from tr, or nil.
func importTree(root string, tr *tar.Reader, first *tar.Header) error {
	c, err := fstree.Open(root)
	if err != nil {
		return err
	}
	defer c.Close()
	im := &importer{root: root, dir: position{c: c}, times: map[fileID]time.Time{}, buf: make([]byte, 1<<20)}
	for hdr := first; ; hdr = nil {
		if hdr == nil {
			if hdr, err = tr.Next(); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("read archive: %w", err)
			}
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := im.add(hdr, tr); err != nil {
			return err
		}
	}
	// Writing in a directory changes its time: they are set last, by inode,
	// in one more walk that writes nothing else.
	return fstree.Walk(root, func(e *fstree.Entry) error {
		mtime, ok := im.times[idOf(&e.Stat)]
		if !ok || !isDir(&e.Stat) {
			return nil
		}
		if err := setTimes(e.Dir, e.Name, mtime); err != nil {
			return fmt.Errorf("import %s: %w", e.Where(), err)
		}
		return nil
	})
}

func (im *importer) add(hdr *tar.Header, r io.Reader) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	err = im.withParent(&im.dir, rel, true, func(dirfd int, name string) error {
		if err := im.make(dirfd, name, rel, hdr, r); err != nil || hdr.Typeflag == tar.TypeLink {
			return err // a hard link shares its target's metadata
		}
		if err := setMeta(dirfd, name, hdr); err != nil || hdr.Typeflag != tar.TypeDir {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fstatat", Path: name, Err: err}
		}
		im.times[idOf(&st)] = hdr.ModTime
		return nil
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", fstree.Shorten(hdr.Name), err)
	}
	return nil
}

// make creates the entry's file at (dirfd, name). Nothing there is
// replaced: O_EXCL, mkdirat, mknodat, symlinkat and linkat all fail on an
// existing name, a symlink included, and never follow it.
func (im *importer) make(dirfd int, name, rel string, hdr *tar.Header, r io.Reader) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if rel == "." {
			return nil
		}
		err := unix.Mkdirat(dirfd, name, 0o700)
		if errors.Is(err, unix.EEXIST) { // lost+found of a new image, or a repeat
			var st unix.Stat_t
			if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || !isDir(&st) {
				return errors.New("a file of another kind is already there")
			}
			return nil
		}
		return err
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		f := os.NewFile(uintptr(fd), fstree.Shorten(rel))
		err = writeHoles(f, r, hdr.Size, im.buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		return unix.Symlinkat(hdr.Linkname, dirfd, name)
	case tar.TypeLink:
		target, err := entryPath(hdr.Linkname)
		if err != nil {
			return err
		}
		// The target's directory is entered by a cursor of its own, as
		// dirfd belongs to the importer's.
		c, err := fstree.Open(im.root)
		if err != nil {
			return err
		}
		defer c.Close()
		return im.withParent(&position{c: c}, target, false, func(tdirfd int, tname string) error {
			return unix.Linkat(tdirfd, tname, dirfd, name, 0) // 0: link a symlink itself
		})
	case tar.TypeChar:
		return unix.Mknodat(dirfd, name, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeBlock:
		return unix.Mknodat(dirfd, name, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeFifo:
		return unix.Mknodat(dirfd, name, unix.S_IFIFO|mode, 0)
	default:
		return fmt.Errorf("%w: entries of type %q cannot be imported into a volume", errdefs.ErrInvalidArgument, hdr.Typeflag)
	}
}

// withParent moves p to the directory that holds rel, a clean path from
// the root, and calls fn with it and rel's last name. With create, missing
// parents are made (archives need not list every directory).
func (im *importer) withParent(p *position, rel string, create bool, fn func(dirfd int, name string) error) error {
	dir, name := "", rel
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dir, name = rel[:i], rel[i+1:]
	}
	err := p.moveTo(dir, create)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("%w: a symlink is on the way in %s: refused, an archive must not write through links", errdefs.ErrInvalidArgument, fstree.Shorten(dir))
	}
	if err != nil {
		return fmt.Errorf("open directory %s: %w", fstree.Shorten(dir), err)
	}
	return fn(p.c.FD(), name)
}

// moveTo moves p to dir, a clean slash path from the root ("" for the
// root): up to the directories both share, then down, making missing ones
// with create.
func (p *position) moveTo(dir string, create bool) error {
	keep := sharedDirs(p.at, dir)
	for len(p.at) > keep {
		if err := p.c.Up(); err != nil {
			return err
		}
		p.at = p.at[:max(strings.LastIndexByte(p.at, '/'), 0)]
	}
	for len(p.at) < len(dir) {
		start := len(p.at)
		if start > 0 {
			start++ // the slash
		}
		end := strings.IndexByte(dir[start:], '/')
		if end < 0 {
			end = len(dir)
		} else {
			end += start
		}
		name := dir[start:end]
		err := p.c.Down(name)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(p.c.FD(), name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				err = p.c.Down(name)
			}
		}
		if err != nil {
			return err
		}
		p.at = dir[:end]
	}
	return nil
}

// sharedDirs is the length of the leading whole components that slash
// paths a and b share: "x/y" and "x/yz" share "x", 1 byte.
func sharedDirs(a, b string) int {
	n, i := 0, 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		if a[i] == '/' {
			n = i
		}
		i++
	}
	if (i == len(a) || a[i] == '/') && (i == len(b) || b[i] == '/') {
		n = i
	}
	return n
}

// setMeta gives a new file its owner, mode, xattrs and time, in that order:
// chown clears setuid bits and security.capability, so they come after it.
func setMeta(dirfd int, name string, hdr *tar.Header) error {
	if err := unix.Fchownat(dirfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fchownat", Path: name, Err: err}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// Not a symlink: this process just made it and none other writes here.
		if err := unix.Fchmodat(dirfd, name, uint32(hdr.Mode&0o7777), 0); err != nil {
			return &os.PathError{Op: "fchmodat", Path: name, Err: err}
		}
	}
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(procPath(dirfd, name), key, []byte(v), 0); err != nil {
			return &os.PathError{Op: "lsetxattr " + key, Path: name, Err: err}
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		return nil // set last, after its content
	}
	return setTimes(dirfd, name, hdr.ModTime)
}

func setTimes(dirfd int, name string, mtime time.Time) error {
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(dirfd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: name, Err: err}
	}
	return nil
}

// writeHoles writes size bytes of r to f, leaving a hole for every block of
// zeros: a sparse file's holes come back as zeros from archive/tar.
func writeHoles(f *os.File, r io.Reader, size int64, buf []byte) error {
	const block = 4096
	var off int64
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		for i := 0; i < n; {
			j := min(i+block, n)
			if isZero(buf[i:j]) {
				i = j
				continue
			}
			for j < n && !isZero(buf[j:min(j+block, n)]) {
				j = min(j+block, n)
			}
			if _, err := f.WriteAt(buf[i:j], off+int64(i)); err != nil {
				return err
			}
			i = j
		}
		off += int64(n)
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
	}
	return f.Truncate(size)
}

var zeros = make([]byte, 4096)

func isZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
