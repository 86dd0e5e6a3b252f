package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// checkUnmounted refuses a volume with anything mounted in it: removing or
// replacing it would reach into that filesystem (containerd #1868).
func checkUnmounted(id ID, dirs ...string) error {
	for _, dir := range dirs {
		ms, err := host.MountsUnder(dir)
		if err != nil {
			return err
		}
		if len(ms) > 0 {
			return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
				"volume %s: %s is still mounted though no container holds the volume: run persistctl gc", id, ms[len(ms)-1]))
		}
	}
	return nil
}

// mountDetached loop-mounts the image in dir at the volume's mount path,
// where gc finds it if this process dies, and returns the undo. The caller
// holds the volume's lock, so no container has it mounted.
func (s *Store) mountDetached(dir string, id ID, readOnly bool) (string, func() error, error) {
	target := s.MountPath(id)
	if err := checkUnmounted(id, target); err != nil {
		return "", nil, err
	}
	image := filepath.Join(dir, imageFile)
	if err := checkImageFree(image); err != nil {
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
	m := mount.Mount{Type: "ext4", Source: image, Options: opts}
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
func (s *Store) content(b Backend, id ID, m Meta, h Holder, live bool) (root string, release func() error, err error) {
	noop := func() error { return nil }
	dir := b.Dir(id)
	if live && m.Type == Dir {
		return filepath.Join(dir, contentFS), noop, nil
	}
	lock := b.LockPath(id)
	if live {
		if _, held := ReadHolder(lock); held {
			target := s.MountPath(id)
			if ok, err := mountinfo.Mounted(target); err != nil || !ok {
				return "", nil, fmt.Errorf("%w: volume is attached but not mounted at %s: its container is starting or stopping, try again", errdefs.ErrUnavailable, target)
			}
			return target, noop, nil
		}
	}
	if err = s.locks.Acquire(lock, h, false); err != nil {
		return "", nil, err
	}
	unlock := func() error { return s.locks.Release(lock, h) }
	if m.Type == Dir {
		return filepath.Join(dir, contentFS), unlock, nil
	}
	target, unmount, err := s.mountDetached(dir, id, true)
	if err != nil {
		unlock()
		return "", nil, err
	}
	return target, func() error { return errors.Join(unmount(), unlock()) }, nil
}

// checkImageFree refuses to loop-mount an image that is not a plain file (a
// link to a block device would mount that device), or that a loop device
// already serves: a release that failed, under this or another state dir,
// left it mounted, and a second mount through another loop device would
// corrupt it.
func checkImageFree(image string) error {
	var st unix.Stat_t
	if err := unix.Lstat(image, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: image, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %s is not a regular file: a volume's image must be one", errdefs.ErrFailedPrecondition, image)
	}
	for end := time.Now().Add(loopDetachWait); ; time.Sleep(20 * time.Millisecond) {
		l, ok := loopOfImage(st)
		if !ok {
			return nil
		}
		if !detaching(l) || time.Now().After(end) {
			return fmt.Errorf("%w: %s is still attached to %s, from an attach that was not released: run persistctl gc",
				errdefs.ErrFailedPrecondition, image, l.Dev())
		}
	}
}

// loopDetachWait bounds the wait for a loop device that detaches itself.
// Since Linux 5.19 the kernel detaches an autoclear loop device from a work
// queue a moment after its last unmount; on a loaded host (the integration
// suite under emulation) that moment grew long enough for an image
// unmounted by one step (a clone's copy) to be found attached by the next
// (a reset).
const loopDetachWait = 10 * time.Second

// loopOfImage finds the loop device attached to the image st.
func loopOfImage(st unix.Stat_t) (host.Loop, bool) {
	for _, l := range host.Loops() {
		var bst unix.Stat_t
		if !l.Deleted && unix.Stat(l.Backing, &bst) == nil && bst.Dev == st.Dev && bst.Ino == st.Ino {
			return l, true
		}
	}
	return host.Loop{}, false
}

// detaching reports whether loop device l is going by itself: it clears on
// its last close and nothing has it mounted.
func detaching(l host.Loop) bool {
	b, err := os.ReadFile(filepath.Join("/sys/block", l.Name, "loop", "autoclear"))
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		return false
	}
	ms, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) { return m.Source != l.Dev(), false })
	return err == nil && len(ms) == 0
}
