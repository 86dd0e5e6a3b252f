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
	runc "github.com/containerd/go-runc"
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
		return fmt.Errorf("mount %s %s at %s: %w", m.Type, m.Source, target, err)
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
	return fmt.Errorf("unmount %s: %w", target, err)
}

// MakeImage implements Mounter. A throwaway image is a copy of a template
// when l.Templates is set: copies share the template's UUID, harmless for a
// filesystem that never outlives its container, while a journaled image
// (a volume, which may move between hosts) gets a fresh mkfs of its own.
func (l Linux) MakeImage(path string, size uint64, journaled bool) error {
	if l.Templates == "" || journaled {
		return l.mkfs(path, size, journaled, false)
	}
	tmpl, err := l.template(size)
	if err != nil {
		return err
	}
	return copyImage(tmpl, path)
}

// mkfs makes a sparse file at path holding an empty ext4 filesystem.
// zeroItable has mkfs mark the inode tables zeroed, so the kernel's lazy
// init does not write them over the first minutes of every mount.
func (l Linux) mkfs(path string, size uint64, journaled, zeroItable bool) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			os.Remove(path)
		}
	}()
	err = f.Truncate(int64(size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size image %s: %w", path, err)
	}
	// A throwaway filesystem is never grown: without the blocks reserved
	// for growth it has a fifth of the metadata to write.
	features := "^has_journal,^resize_inode"
	if journaled {
		features = "has_journal"
	}
	// lazy init and nodiscard keep mkfs from writing the whole sparse file;
	// without lazy inode tables it zeroes them with fallocate, still sparse.
	lazy := "lazy_itable_init=1"
	if zeroItable {
		lazy = "lazy_itable_init=0"
	}
	cmd := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-O", features,
		"-E", "nodiscard,"+lazy+",lazy_journal_init=1", path)
	if out, err := l.output(cmd); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return errors.New("mkfs.ext4 not found: install e2fsprogs")
		}
		return fmt.Errorf("mkfs.ext4 %s: %v: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
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
	if err := l.mkfs(tmp, size, false, true); err != nil {
		return "", fmt.Errorf("make image template: %w", err)
	}
	if err := syncPath(tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, syncPath(l.Templates)
}

// copyImage copies the sparse image src to the new file dst: a reflink
// where the filesystem shares blocks (btrfs, xfs), else only the data
// extents, so dst stays as sparse as src. dst is not synced: a throwaway
// image need not survive a crash, and its journal has it removed.
func copyImage(src, dst string) (retErr error) {
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
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return nil
	}
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		return err
	}
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil // only a hole is left
		}
		if err != nil {
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if err := copyRange(in, out, data, hole-data); err != nil {
			return err
		}
		off = hole
	}
	return nil
}

// copyRange copies n bytes at off from in to out, in the kernel where it
// can (copy_file_range), else through a buffer.
func copyRange(in, out *os.File, off, n int64) error {
	for n > 0 {
		roff, woff := off, off
		c, err := unix.CopyFileRange(int(in.Fd()), &roff, int(out.Fd()), &woff, int(n), 0)
		if err != nil || c == 0 {
			_, err := io.Copy(io.NewOffsetWriter(out, off), io.NewSectionReader(in, off, n))
			return err
		}
		off, n = off+int64(c), n-int64(c)
	}
	return nil
}

// syncPath flushes a file or directory to disk.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
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
