package volumes

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// exporter writes a tree to a tar stream.
type exporter struct {
	w     io.Writer // under tw, for the sparse entries tw cannot write
	tw    *tar.Writer
	links map[fileID]string // first name of each file with several links
}

// exportTree writes the tree at root to w as a PAX tar, m first. Entries
// keep numeric owners, modes, times and xattrs; hard links, symlinks,
// devices and fifos are entries of their kind; holes stay holes. Sockets
// are skipped, like tar does. Nothing is followed, and any depth is read:
// see fstree.Walk.
func exportTree(root string, w io.Writer, m Meta) error {
	x := &exporter{w: w, tw: tar.NewWriter(w), links: map[fileID]string{}}
	hdr, err := volumeHeader(m)
	if err != nil {
		return err
	}
	if err := x.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if err := fstree.Walk(root, x.add); err != nil {
		return err
	}
	return x.tw.Close()
}

func (x *exporter) add(e *fstree.Entry) error {
	st, rel := &e.Stat, e.Path()
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
		Format:  tar.FormatPAX,
	}
	xattrs, err := listXattrs(procPath(e.Dir, e.Name))
	if err != nil {
		return fmt.Errorf("export %s: %w", fstree.Shorten(rel), err)
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			hdr.PAXRecords[xattrPrefix+k] = v
		}
	}
	if !isDir(st) && st.Nlink > 1 {
		if first, ok := x.links[idOf(st)]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.PAXRecords = tar.TypeLink, first, nil
			return x.tw.WriteHeader(hdr)
		}
		x.links[idOf(st)] = rel
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		if hdr.Linkname, err = readlinkat(e.Dir, e.Name); err != nil {
			return fmt.Errorf("export %s: %w", fstree.Shorten(rel), err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFREG:
		return x.addFile(e, hdr, fstree.Shorten(rel))
	default:
		return nil // a socket: it means nothing without its process
	}
	return x.tw.WriteHeader(hdr)
}

// addFile writes a regular file; short names it in errors.
func (x *exporter) addFile(e *fstree.Entry, hdr *tar.Header, short string) error {
	fd, err := unix.Openat(e.Dir, e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "openat", Path: short, Err: err}
	}
	f := os.NewFile(uintptr(fd), short)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || idOf(&st) != idOf(&e.Stat) {
		return fmt.Errorf("export %s: the file changed while it was read", short)
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	if st.Blocks*512 < st.Size {
		frags, err := host.DataExtents(fd, st.Size)
		if err != nil {
			return fmt.Errorf("export %s: %w", short, err)
		}
		if err := x.tw.Flush(); err != nil {
			return err
		}
		return writeSparse(x.w, hdr, frags, f)
	}
	if err := x.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(x.tw, f); err != nil {
		return fmt.Errorf("export %s: %w", short, err)
	}
	return nil
}

// procPath names a file by its directory's descriptor, for the xattr
// calls, which have no *at form before Linux 6.13: the kernel resolves the
// magic link to the directory itself, and the l* calls do not follow name.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

// listXattrs reads the xattrs of p, not following a symlink at p.
func listXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "llistxattr", Path: p, Err: err}
		}
		buf = buf[:n]
		break
	}
	xattrs := map[string]string{}
	for len(buf) > 0 {
		i := 0
		for i < len(buf) && buf[i] != 0 {
			i++
		}
		key := string(buf[:i])
		buf = buf[min(i+1, len(buf)):]
		if key == "" {
			continue
		}
		v, err := getXattr(p, key)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "lgetxattr " + key, Path: p, Err: err}
		}
		xattrs[key] = v
	}
	return xattrs, nil
}

func getXattr(p, key string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, key, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

func readlinkat(dirfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*4)
	}
}
