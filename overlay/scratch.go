//go:build linux

package overlay

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
)

// Scratch is one writable, size-limited path of a container that vanishes
// with it.
type Scratch struct {
	Path string // in the container
	Disk bool   // a loop-mounted ext4 image instead of tmpfs
	Size uint64 // bytes
	// ReserveLater makes a disk scratch's image sparse: the caller reserves
	// its space (host.Reserve of Image) before the container can write,
	// off the path that the mount is on.
	ReserveLater bool
	// Mounted says that MountOwn has mounted the scratch's own filesystem
	// at its dir already, ahead of Setup.
	Mounted bool
	// Spares, for a disk scratch, are the filesystems kept for it to take
	// rather than make its own.
	Spares Spares
}

// A disk scratch's filesystem and its image are kept together in the
// scratch's dir, so that one rename moves both: see Spares.
const (
	rootName = "fs"
	imageExt = ".img"
)

// Root is where the scratch's own filesystem is mounted, for the scratch
// at dir: dir itself for tmpfs.
func (s Scratch) Root(dir string) string {
	if s.Disk {
		return filepath.Join(dir, rootName)
	}
	return dir
}

// Image is the path of a disk scratch's image, for the scratch at dir.
func (s Scratch) Image(dir string) string { return s.Root(dir) + imageExt }

// Setup gives the scratch its own filesystem, laid over lower, and returns
// the OCI mount that puts it at s.Path in the container.
//
// The upper filesystem (tmpfs, or an ext4 image for Disk) is mounted at
// Root(dir); Setup creates dir. When lower has content, the overlay of it
// over the upper is mounted on the host too, at Root(dir)/merged, from the directories
// lower holds open: nothing of the lower is looked up by name again, so no
// link that an image, a volume or a pod spec plants on the way to s.Path can
// lead it to a host path. The container gets a bind of it, whose destination
// runc resolves inside the root. When lower is empty, there is nothing to
// lay over: disk scratch binds the upper directory, and memory scratch is a
// tmpfs that runc makes, with nothing on the host at all.
//
// The upper directory takes the mode and owner of the image's directory.
func (s Scratch) Setup(h host.Mounter, j *journal.Journal, dir string, lower *Lower) (specs.Mount, error) {
	if !s.OnHost(lower) {
		return specs.Mount{
			Destination: s.Path,
			Type:        "tmpfs",
			Source:      "tmpfs",
			Options: append(host.TmpfsOptions(s.Size),
				fmt.Sprintf("mode=%04o", unixMode(lower.Owner.Mode)),
				"uid="+strconv.Itoa(lower.Owner.UID), "gid="+strconv.Itoa(lower.Owner.GID),
				"nodev", "nosuid"),
		}, nil
	}
	root := s.Root(dir)
	upper, work, merged := filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "merged")
	bind := func(src string) specs.Mount {
		return specs.Mount{Destination: s.Path, Type: "bind", Source: src, Options: []string{"rbind", "rw", "nosuid", "nodev"}}
	}
	if lower.empty() {
		if err := s.mountUpper(h, j, dir, lower.Owner); err != nil {
			return specs.Mount{}, err
		}
		return bind(upper), nil
	}
	m := mount.Mount{
		Type:    "overlay",
		Source:  "overlay",
		Options: append([]string{lower.lowerdir(), "upperdir=" + upper, "workdir=" + work}, lower.Options...),
	}
	// Checked before anything is made: the options of a mount are one page.
	if n := len(strings.Join(m.Options, ",")); n >= os.Getpagesize() {
		return specs.Mount{}, fmt.Errorf("%w: the %d image layers with content at scratch %s do not fit the options of one overlay mount (%d of at most %d bytes): squash the image's layers, or move the scratch to a path fewer layers have",
			errdefs.ErrInvalidArgument, len(lower.dirs), s.Path, n, os.Getpagesize()-1)
	}
	m.Options = append(m.Options, "nodev", "nosuid")
	if err := s.mountUpper(h, j, dir, lower.Owner); err != nil {
		return specs.Mount{}, err
	}
	for _, d := range []string{work, merged} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return specs.Mount{}, err
		}
	}
	if err := j.Record(journal.Step{Kind: journal.Mount, Path: merged}); err != nil {
		return specs.Mount{}, err
	}
	if err := h.Mount(m, merged); err != nil {
		return specs.Mount{}, fmt.Errorf("lay scratch for %s over the image: %w", s.Path, err)
	}
	return bind(merged), nil
}

// OnHost reports whether Setup mounts anything on the host over lower: all
// but memory scratch with nothing to lay over do.
func (s Scratch) OnHost(lower *Lower) bool { return s.Disk || !lower.empty() }

// MountUpper mounts the scratch's own filesystem at Root(dir), making dir,
// and makes the directory "upper" in it with owner's mode and ownership.
func (s Scratch) MountUpper(h host.Mounter, j *journal.Journal, dir string, owner host.Owner) error {
	if err := s.MountOwn(h, j, dir); err != nil {
		return err
	}
	return owner.Mkdir(filepath.Join(s.Root(dir), "upper"))
}

// mountUpper is MountUpper, or only its upper directory when Mounted.
func (s Scratch) mountUpper(h host.Mounter, j *journal.Journal, dir string, owner host.Owner) error {
	if s.Mounted {
		return owner.Mkdir(filepath.Join(s.Root(dir), "upper"))
	}
	return s.MountUpper(h, j, dir, owner)
}

// MountOwn mounts the scratch's own filesystem at Root(dir), making dir.
// It needs nothing of the image: a disk scratch's can be mounted before the
// container's root is known. A disk scratch takes a spare filesystem of its
// size where one is kept, and else makes its image and mounts it.
func (s Scratch) MountOwn(h host.Mounter, j *journal.Journal, dir string) error {
	if !s.Disk {
		if err := j.Record(journal.Step{Kind: journal.Dir, Path: dir}); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := j.Record(journal.Step{Kind: journal.Mount, Path: dir}); err != nil {
			return err
		}
		m := mount.Mount{
			Type:    "tmpfs",
			Source:  "tmpfs",
			Options: append(host.TmpfsOptions(s.Size), "mode=0700", "nodev", "nosuid"),
		}
		if err := h.Mount(m, dir); err != nil {
			return fmt.Errorf("mount scratch for %s: %w", s.Path, err)
		}
		return nil
	}
	// Recorded before either way: a spare taken is undone as one made is.
	root, image := s.Root(dir), s.Image(dir)
	for _, step := range []journal.Step{{Kind: journal.Dir, Path: dir}, {Kind: journal.File, Path: image}, {Kind: journal.Dir, Path: root}, {Kind: journal.Mount, Path: root}} {
		if err := j.Record(step); err != nil {
			return err
		}
	}
	if ok, err := s.Spares.Take(dir, s.Size); ok || err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := h.MakeImage(image, s.Size, host.ImageOptions{Sparse: s.ReserveLater}); err != nil {
		return fmt.Errorf("make scratch image for %s: %w", s.Path, err)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		return err
	}
	m := mount.Mount{Type: "ext4", Source: image, Options: []string{"loop", "nodev", "nosuid", "noatime"}}
	if err := h.Mount(m, root); err != nil {
		return fmt.Errorf("mount scratch for %s: %w", s.Path, err)
	}
	return nil
}

// unixMode is mode as permission bits for a mode= option.
func unixMode(mode fs.FileMode) uint32 {
	m := uint32(mode.Perm())
	if mode&fs.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}
