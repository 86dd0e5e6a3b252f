package volumes

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// copyChunk is how much is copied between two progress reports.
const copyChunk = 8 << 20

// copyMode says whether a copy may share blocks with its source, and
// whether it reserves its space.
type copyMode int

const (
	// mayShare: a reflink where the filesystem can, else a sparse copy.
	mayShare copyMode = iota
	// noShare: a sparse copy that shares no block with its source.
	noShare
	// reserve: a copy that shares no block, into an image whose every
	// block was allocated first.
	reserve
)

// copyImage copies a volume's image src to the new file dst and syncs it.
// With mayShare, dst is a reflink where the filesystem shares blocks
// (FICLONE: XFS with reflink=1, btrfs), else a copy of the data extents
// (SEEK_DATA/SEEK_HOLE), as sparse as src. Otherwise the data extents are
// copied by read and write (copy_file_range may share blocks on XFS and
// btrfs): a shared block needs new space at its first write, which is what
// a reserved volume rules out; with reserve, into an image whose every
// block was allocated first.
func copyImage(src, dst string, mode copyMode, progress func(done, total int64)) (method string, retErr error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	defer func() {
		if err := out.Close(); retErr == nil {
			retErr = err
		}
		if retErr != nil {
			os.Remove(dst)
			retErr = fmt.Errorf("copy image %s to %s: %w", src, dst, retErr)
		}
	}()
	fi, err := in.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", errdefs.ErrFailedPrecondition, src)
	}
	size := fi.Size()
	if mode == mayShare && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		if progress != nil {
			progress(size, size)
		}
		return MethodReflink, out.Sync()
	}
	method = MethodCopy
	if err := out.Truncate(size); err != nil {
		return "", err
	}
	if mode == reserve {
		method = MethodReserved
		if err := unix.Fallocate(int(out.Fd()), 0, 0, size); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return "", fmt.Errorf("%w: reserve %s for %s: %v: free space on the backend, or remove snapshots",
					errdefs.ErrResourceExhausted, units.BytesSize(float64(size)), dst, err)
			}
			return "", fmt.Errorf("reserve %s for %s: %w", units.BytesSize(float64(size)), dst, err)
		}
	}
	extents, err := host.DataExtents(int(in.Fd()), size)
	if err != nil {
		return "", err
	}
	var total, done int64
	for _, e := range extents {
		total += e.Len
	}
	buf := make([]byte, 1<<20)
	for _, e := range extents {
		for off, end := e.Off, e.Off+e.Len; off < end; {
			n := min(end-off, copyChunk)
			if err := host.CopyRange(in, out, off, n, mode == mayShare, buf); err != nil {
				return "", err
			}
			off, done = off+n, done+n
			if progress != nil {
				progress(done, total)
			}
		}
	}
	return method, out.Sync()
}

// copyTree copies the tree at src into the empty directory dst, as an
// export streamed into an import: owners, modes, xattrs, hard links,
// symlinks, devices and holes are kept, no link is followed and any depth
// is copied (see exportTree, importTree). dst's filesystem is synced.
func copyTree(src, dst string, progress func(done, total int64)) error {
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		var w io.Writer = pw
		if progress != nil {
			w = &progressWriter{w: pw, fn: progress}
		}
		err := exportTree(src, w, Meta{})
		pw.CloseWithError(err)
		exported <- err
	}()
	err := importTree(dst, tar.NewReader(pr), nil)
	pr.CloseWithError(errors.New("copy stopped"))
	if xerr := <-exported; xerr != nil && err == nil {
		err = xerr
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return Syncfs(dst)
}

// progressWriter tells fn how many bytes went through it.
type progressWriter struct {
	w  io.Writer
	n  int64
	fn func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	p.fn(p.n, 0)
	return n, err
}
