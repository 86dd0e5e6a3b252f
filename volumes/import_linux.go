package volumes

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// importer writes the entries of a tar stream under root. Every entry is
// made by (parent directory descriptor, name), with parents resolved by
// openat2 beneath root and through no symlink: an archive cannot write
// outside root, nor through a link that an earlier entry made.
type importer struct {
	root  *os.File
	times []dirTime // directory times, set once their content is written
	buf   []byte
}

type dirTime struct {
	rel   string
	mtime time.Time
}

// importTree extracts tr into the empty tree at root; first is the entry
// already read from tr, or nil.
func importTree(root string, tr *tar.Reader, first *tar.Header) error {
	f, err := os.OpenFile(root, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	im := &importer{root: f, buf: make([]byte, 1<<20)}
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
	// Deepest first, so setting a parent's time comes after its children.
	for i := len(im.times) - 1; i >= 0; i-- {
		t := im.times[i]
		if err := im.withParent(t.rel, false, func(dirfd int, name string) error {
			return setTimes(dirfd, name, t.mtime)
		}); err != nil {
			return fmt.Errorf("import %s: %w", t.rel, err)
		}
	}
	return nil
}

func (im *importer) add(hdr *tar.Header, r io.Reader) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	err = im.withParent(rel, true, func(dirfd int, name string) error {
		if err := im.make(dirfd, name, rel, hdr, r); err != nil || hdr.Typeflag == tar.TypeLink {
			return err // a hard link shares its target's metadata
		}
		return setMeta(dirfd, name, hdr)
	})
	if err != nil {
		return fmt.Errorf("import %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag == tar.TypeDir {
		im.times = append(im.times, dirTime{rel, hdr.ModTime})
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
		f := os.NewFile(uintptr(fd), rel)
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
		return im.withParent(target, false, func(tdirfd int, tname string) error {
			return unix.Linkat(tdirfd, tname, dirfd, name, 0) // 0: link a symlink itself
		})
	case tar.TypeChar:
		return unix.Mknodat(dirfd, name, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeBlock:
		return unix.Mknodat(dirfd, name, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeFifo:
		return unix.Mknodat(dirfd, name, unix.S_IFIFO|mode, 0)
	default:
		return fmt.Errorf("entries of type %q cannot be imported into a volume", hdr.Typeflag)
	}
}

// withParent opens the directory that holds rel, beneath root and through
// no symlink, and calls fn with it and rel's last name. With create, missing
// parents are made (archives need not list every directory).
func (im *importer) withParent(rel string, create bool, fn func(dirfd int, name string) error) error {
	if rel == "." {
		return fn(int(im.root.Fd()), ".")
	}
	dir, name := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		return fn(int(im.root.Fd()), name)
	}
	fd, err := im.openDir(dir)
	if errors.Is(err, unix.ENOENT) && create {
		if err = im.mkdirAll(dir); err == nil {
			fd, err = im.openDir(dir)
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return fmt.Errorf("a symlink is on the way in %s: refused, an archive must not write through links", dir)
	}
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer unix.Close(fd)
	return fn(fd, name)
}

func (im *importer) openDir(dir string) (int, error) {
	return unix.Openat2(int(im.root.Fd()), dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

func (im *importer) mkdirAll(dir string) error {
	parent, name := path.Split(dir)
	parent = strings.TrimSuffix(parent, "/")
	if parent != "" {
		fd, err := im.openDir(parent)
		if err == nil {
			unix.Close(fd)
		} else if errors.Is(err, unix.ENOENT) {
			if err := im.mkdirAll(parent); err != nil {
				return err
			}
		}
	}
	return im.withParent(dir, false, func(dirfd int, _ string) error {
		err := unix.Mkdirat(dirfd, name, 0o755)
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return err
	})
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
