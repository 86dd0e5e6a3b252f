package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
)

// MountsUnder lists what is mounted at or under dir, deepest first, so
// that they can be unmounted in that order.
func MountsUnder(dir string) ([]string, error) {
	// Mountinfo has the real path: one through a symlink would match nothing.
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mounts under %s: %w", dir, err)
	}
	paths := make([]string, len(ms))
	for i, m := range ms {
		paths[i] = m.Mountpoint
	}
	// Mountinfo lists parents before the mounts on top of them.
	for i, j := 0, len(paths)-1; i < j; i, j = i+1, j-1 {
		paths[i], paths[j] = paths[j], paths[i]
	}
	return paths, nil
}

// checkUnmounted refuses a volume with anything mounted in it: removing or
// replacing it would reach into that filesystem (containerd #1868).
func checkUnmounted(name string, dirs ...string) error {
	for _, dir := range dirs {
		ms, err := MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
				"volume %s: %s is still mounted though no container holds the volume: run persistctl gc", name, ms[len(ms)-1]))
		}
	}
	return nil
}

// mountDetached loop-mounts the image in dir at the volume's mount path,
// where gc finds it if this process dies, and returns the undo. The caller
// holds the volume's lock, so no container has it mounted.
func (s *Store) mountDetached(dir, ns, name string, readOnly bool) (string, func() error, error) {
	target := s.MountPath(ns, name)
	if err := checkUnmounted(name, target); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", nil, err
	}
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", nil, err
	}
	// Only this process reads or writes here: nothing in it is to be run,
	// and device nodes an import writes must not open host devices.
	opts := []string{"loop", "nodev", "nosuid", "noexec"}
	if readOnly {
		opts = append(opts, "ro")
	}
	m := mount.Mount{Type: "ext4", Source: filepath.Join(dir, imageFile), Options: opts}
	if err := s.mounter.Mount(m, target); err != nil {
		os.Remove(target)
		return "", nil, err
	}
	undo := func() error {
		if err := s.mounter.Unmount(target); err != nil {
			return err
		}
		return os.Remove(target)
	}
	return target, undo, nil
}

// content returns where a volume's content can be read, and how to let go
// of it. Unless live is set, the volume must be detached, and stays so under
// its lock, held as h, until release. A detached loopfile volume is mounted
// for this; a live one is read where its container has it mounted.
func (s *Store) content(dir string, m Meta, h Holder, live bool) (root string, release func() error, err error) {
	noop := func() error { return nil }
	if live && m.Type == Dir {
		return filepath.Join(dir, contentFS), noop, nil
	}
	if live {
		if _, held := ReadHolder(s.LockPath(m.Namespace, m.Name)); held {
			target := s.MountPath(m.Namespace, m.Name)
			if ok, err := mountinfo.Mounted(target); err != nil || !ok {
				return "", nil, fmt.Errorf("volume is attached but not mounted at %s: its container is starting or stopping, try again", target)
			}
			return target, noop, nil
		}
	}
	lock := s.LockPath(m.Namespace, m.Name)
	if err = s.locks.Acquire(lock, h, false); err != nil {
		return "", nil, err
	}
	unlock := func() error { return s.locks.Release(lock, h) }
	if m.Type == Dir {
		return filepath.Join(dir, contentFS), unlock, nil
	}
	target, unmount, err := s.mountDetached(dir, m.Namespace, m.Name, true)
	if err != nil {
		unlock()
		return "", nil, err
	}
	return target, func() error { return errors.Join(unmount(), unlock()) }, nil
}
