package host

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

// Linux is the real Mounter.
type Linux struct {
	// Monitor starts and waits for commands. A shim must pass its reaper:
	// it reaps every exited child, so a plain exec.Cmd.Wait would find its
	// child gone (ECHILD). nil runs commands directly.
	Monitor runc.ProcessMonitor
	// Templates, when set, is a directory where MakeImage keeps one
	// formatted throwaway image per size and copies it, instead of running
	// mkfs.ext4 on every container start. See WithTemplates. It must be
	// private (a template planted there would be every container's scratch)
	// and on the images' filesystem, where a copy can be a reflink.
	Templates string
}

// WithTemplates returns m with Templates set to dir when m is a Linux, and
// any other Mounter (a test's fake) as it is.
func WithTemplates(m Mounter, dir string) Mounter {
	if l, ok := m.(Linux); ok {
		l.Templates = dir
		return l
	}
	return m
}

// Mount implements Mounter.
func (Linux) Mount(m mount.Mount, target string) error {
	if err := m.Mount(target); err != nil {
		return &MountError{Op: "mount", Type: m.Type, Source: m.Source, Target: target, Options: m.Options, Err: err}
	}
	return nil
}

// Unmount implements Mounter. EINVAL (not a mountpoint) and ENOENT are
// success: the step was already undone or never done.
func (Linux) Unmount(target string) error {
	err := mount.Unmount(target, 0)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return &MountError{Op: "unmount", Target: target, Err: err}
}

// MakeImage implements Mounter. A throwaway image is a copy of a template
// when l.Templates is set: copies share the template's UUID, harmless for a
// filesystem that never outlives its container, while a journaled image
// (a volume, which may move between hosts) gets a fresh mkfs of its own.
func (l Linux) MakeImage(path string, size uint64, o ImageOptions) error {
	if err := CheckImageSize(size, o.Journaled); err != nil {
		return err
	}
	if l.Templates == "" || o.Journaled {
		return l.mkfs(path, size, o, false)
	}
	tmpl, err := l.template(size)
	if err != nil {
		return err
	}
	return copyImage(tmpl, path, !o.Sparse)
}

// mkfs makes a file at path holding an empty ext4 filesystem, its space
// reserved unless o.Sparse. zeroItable has mkfs mark the inode tables
// zeroed, so the kernel's lazy init does not write them over the first
// minutes of every mount.
func (l Linux) mkfs(path string, size uint64, o ImageOptions, zeroItable bool) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
		if retErr != nil {
			os.Remove(path)
		}
	}()
	if err := f.Truncate(int64(size)); err != nil {
		return fmt.Errorf("size image %s: %w", path, err)
	}
	// Reserved before mkfs, so that a full filesystem fails here with one
	// line rather than in the middle of mkfs.
	if !o.Sparse {
		if err := reserve(f, size); err != nil {
			return err
		}
	}
	// A throwaway filesystem is never grown: without the blocks reserved
	// for growth it has a fifth of the metadata to write.
	features := "^has_journal,^resize_inode"
	if o.Journaled {
		features = "has_journal"
	}
	// lazy init keeps mkfs from writing the whole file; without lazy inode
	// tables it zeroes them with fallocate, still sparse. nodiscard keeps
	// it from discarding the file first, which would punch out the space
	// reserved above.
	lazy := "lazy_itable_init=1"
	if zeroItable {
		lazy = "lazy_itable_init=0"
	}
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-O", features,
		"-E", "nodiscard,"+lazy+",lazy_journal_init=1", path)
	if out, err := l.output(cmd); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%w: %w: install e2fsprogs", errdefs.ErrFailedPrecondition, err)
		}
		// One line: a create error is shown as one line by ctr and the kubelet.
		msg := strings.Join(strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; ")), " ")
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, msg)
	}
	// Where the filesystem cannot zero a range in place (tmpfs has no
	// FALLOC_FL_ZERO_RANGE), mkfs zeroes blocks by punching holes, which
	// gives their space back: take it again. Elsewhere this allocates
	// nothing.
	if !o.Sparse {
		return reserve(f, size)
	}
	return nil
}

// reserve allocates every block of f up to size, so that writes inside the
// image never find its host filesystem full. Blocks already written stay
// as they are; new ones read as zeros. Its errors wrap their errdefs class
// and the errno.
func reserve(f *os.File, size uint64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSPC):
		return fmt.Errorf("%w: reserve %s for image %s: %w: free space on its filesystem, or ask for a smaller size",
			errdefs.ErrResourceExhausted, units.BytesSize(float64(size)), f.Name(), err)
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("%w: reserve space for image %s: its filesystem cannot (fallocate: %w): put it on ext4, xfs or tmpfs, or set overcommit = true on a loopfile backend",
			errdefs.ErrFailedPrecondition, f.Name(), err)
	}
	return fmt.Errorf("reserve %s for image %s: %w", units.BytesSize(float64(size)), f.Name(), err)
}

// Reserve allocates every block of the image at path up to size, as
// MakeImage does unless o.Sparse: for an image made sparse so that its
// space is reserved later, off its owner's critical path. Blocks it shares
// with another file (a reflinked copy) are unshared first, where the
// filesystem can: their first write would need new space too.
func Reserve(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_UNSHARE_RANGE, 0, int64(size)); err != nil &&
		!errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unshare the blocks of image %s: %w", path, err)
	}
	return reserve(f, size)
}

// templateVersion names the mkfs options of templates: change it with them,
// so that older templates are not used.
const templateVersion = 1

// template returns the template for throwaway images of size bytes, making
// it first if missing. It is made beside its place and renamed there once
// it is on disk, so a reader never sees half a template; two shims racing
// both make one and the last rename wins.
func (l Linux) template(size uint64) (string, error) {
	path := filepath.Join(l.Templates, fmt.Sprintf("ext4-v%d-%d.img", templateVersion, size))
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(size) {
		return path, nil
	}
	if err := os.MkdirAll(l.Templates, 0o700); err != nil {
		return "", err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := fmt.Sprintf("%s.tmp-%x", path, rnd)
	// A template is only ever read: it need not reserve its space.
	if err := l.mkfs(tmp, size, ImageOptions{Sparse: true}, true); err != nil {
		return "", fmt.Errorf("make image template: %w", err)
	}
	if err := SyncPath(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, SyncPath(l.Templates)
}

// copyImage copies the sparse image src to the new file dst. When
// reserving, dst's every block is allocated first and src's data extents
// are written into them. Else dst is a reflink where the filesystem shares
// blocks (btrfs, xfs), or a copy of the data extents, as sparse as src. A
// reserved copy is never a reflink: blocks shared with src would need new
// space at their first write, which is what reserving rules out. dst is
// not synced: a throwaway image need not survive a crash, and its journal
// has it removed.
func copyImage(src, dst string, reserved bool) (retErr error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
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
	if !reserved && unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	if reserved {
		if err := reserve(out, uint64(fi.Size())); err != nil {
			return err
		}
	}
	extents, err := DataExtents(int(in.Fd()), fi.Size())
	if err != nil {
		return err
	}
	for _, e := range extents {
		if err := CopyRange(in, out, e.Off, e.Len, !reserved, nil); err != nil {
			return err
		}
	}
	return nil
}

// DataExtents lists the runs of the file open as fd, below size, that hold
// data, found with SEEK_DATA and SEEK_HOLE; what lies between them is holes.
func DataExtents(fd int, size int64) ([]Extent, error) {
	var extents []Extent
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return nil, err
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		extents = append(extents, Extent{Off: data, Len: hole - data})
		off = hole
	}
	return extents, nil
}

// CopyRange copies n bytes at off from in to out, in the kernel where it
// can and inKernel is set (copy_file_range), else through buf (nil: one of
// its own). In the kernel, btrfs and xfs may share the blocks rather than
// copy them.
func CopyRange(in, out *os.File, off, n int64, inKernel bool, buf []byte) error {
	for inKernel && n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(n), 0)
		if err != nil || c == 0 {
			break
		}
		off, n = off+int64(c), n-int64(c)
	}
	if n == 0 {
		return nil
	}
	_, err := io.CopyBuffer(io.NewOffsetWriter(out, off), io.NewSectionReader(in, off, n), buf)
	return err
}

// output runs cmd and returns its combined output, through the monitor if
// there is one.
func (l Linux) output(cmd *exec.Cmd) ([]byte, error) {
	if l.Monitor == nil {
		return cmd.CombinedOutput()
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	ec, err := l.Monitor.Start(cmd)
	if err != nil {
		return nil, err
	}
	status, err := l.Monitor.Wait(cmd, ec)
	if err == nil && status != 0 {
		err = fmt.Errorf("exit status %d", status)
	}
	return out.Bytes(), err
}
