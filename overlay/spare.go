//go:build linux

package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// A disk scratch's filesystem costs milliseconds of kernel work at each
// end of its container: a loop device and an ext4 mount before it starts,
// an unmount, a loop detach and the unlink of a reserved image after it.
// A released one whose container left little in it is emptied instead and
// kept, still mounted, as a spare for the next container that asks for a
// disk scratch of its size, which takes it with one rename.
//
// A spare is a directory of Spares.Dir holding what a disk scratch's own
// directory holds (see Scratch.Root): the mounted filesystem at "fs" and
// its image, reserved, beside it. It is named after its size. Whoever
// renames it first owns it: a container's setup (Take), or a drain (gc, or
// a reservation that finds its filesystem full). A release publishes one
// with one rename, once it is emptied; a directory whose name starts with
// a dot is being drained.
//
// An emptied filesystem holds nothing of its last container that a file
// can read: ext4 gives new files zeroed blocks, and no container gets the
// device. Its image keeps the space it reserved, so the size is still a
// promise.

// Spares are the spare disk scratch filesystems of a state dir.
type Spares struct {
	Dir     string       // where they are kept; "" keeps none
	Mounter host.Mounter // unmounts what is drained
}

// maxSpares is how many spares of one size are kept: enough for the
// containers that start together on a host, few enough that idle spares
// hold little space (each holds its size).
const maxSpares = 2

// maxSpareInodes is how many inodes a released filesystem may use and be
// kept: removing more would take longer than the unmount it saves.
const maxSpareInodes = 1024

// Take moves a spare filesystem of size bytes to area, which must not
// exist, as a disk scratch's own directory (see Scratch.Root), and says
// whether there was one. A spare found not mounted (the host restarted) is
// drained and the next one tried.
func (s Spares) Take(area string, size uint64) (bool, error) {
	if s.Dir == "" {
		return false, nil
	}
	names, err := s.names(size)
	if err != nil {
		return false, err
	}
	for _, name := range names {
		err := os.Rename(filepath.Join(s.Dir, name), area)
		if errors.Is(err, fs.ErrNotExist) {
			continue // taken by another container
		}
		if err != nil {
			return false, fmt.Errorf("take spare scratch %s: %w", name, err)
		}
		if host.MountedAt(filepath.Join(area, rootName)) {
			return true, nil
		}
		if err := s.discard(area); err != nil {
			return false, err
		}
	}
	return false, nil
}

// Put keeps the disk scratch whose filesystem is mounted at root as a
// spare, emptied, and says whether it did. It does not when the
// filesystem is not one that Take can give out whole (not mounted, its
// image not fully reserved, anything mounted below it, too much left in
// it), or when enough spares of its size are kept; the caller then
// unmounts it. Only the container's own release may call it: once its
// processes are gone, nothing else uses the filesystem.
func (s Spares) Put(root string) bool {
	if s.Dir == "" || filepath.Base(root) != rootName {
		return false
	}
	var img unix.Stat_t
	if unix.Stat(root+imageExt, &img) != nil || img.Mode&unix.S_IFMT != unix.S_IFREG || uint64(img.Blocks)*512 < uint64(img.Size) {
		return false
	}
	var st unix.Statfs_t
	if unix.Statfs(root, &st) != nil || st.Type != unix.EXT4_SUPER_MAGIC || st.Files-st.Ffree > maxSpareInodes || !host.MountedAt(root) {
		return false
	}
	size := uint64(img.Size)
	if names, err := s.names(size); err != nil || len(names) >= maxSpares {
		return false
	}
	if !empty(root) {
		return false
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return false
	}
	name := fmt.Sprintf("%d-%016x", size, rand.Uint64())
	return os.Rename(filepath.Dir(root), filepath.Join(s.Dir, name)) == nil
}

// empty removes everything in the filesystem mounted at root but its
// lost+found, and says whether it could. Nothing is removed while a mount
// is left on it (an overlay whose unmount failed); fstree.RemoveAll
// neither follows a link nor reaches into a mount below that.
func empty(root string) bool {
	entries, err := os.ReadDir(root)
	if err != nil {
		return false
	}
	var paths []string
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if host.MountedAt(p) {
			return false
		}
		if e.Name() != "lost+found" {
			paths = append(paths, p)
		}
	}
	for _, p := range paths {
		if fstree.RemoveAll(p) != nil {
			return false
		}
	}
	return true
}

// Drain unmounts and removes every spare, and what a drain that stopped
// midway left; a spare taken meanwhile is left to its taker.
func (s Spares) Drain() error {
	names, err := readNames(s.Dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := s.DrainOne(filepath.Join(s.Dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DrainOne unmounts and removes the spare at path, unless another took it
// first.
func (s Spares) DrainOne(path string) error {
	claimed := path
	if !strings.HasPrefix(filepath.Base(path), ".") {
		claimed = filepath.Join(s.Dir, fmt.Sprintf(".drain-%016x", rand.Uint64()))
		if err := os.Rename(path, claimed); errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("drain spare scratch %s: %w", path, err)
		}
	}
	return s.discard(claimed)
}

// discard unmounts the spare claimed at area, and removes its image and
// directories.
func (s Spares) discard(area string) error {
	root := filepath.Join(area, rootName)
	if err := s.Mounter.Unmount(root); err != nil {
		return fmt.Errorf("drain spare scratch %s: %w", area, err)
	}
	for _, p := range []string{root + imageExt, root, area} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("drain spare scratch %s: %w", area, err)
		}
	}
	return nil
}

// names lists the spares of size bytes, or of every size when size is 0.
func (s Spares) names(size uint64) ([]string, error) {
	names, err := readNames(s.Dir)
	if err != nil {
		return nil, err
	}
	prefix := strconv.FormatUint(size, 10) + "-"
	out := names[:0]
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out, nil
}

// readNames lists dir; a missing dir is empty.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return names, nil
}
