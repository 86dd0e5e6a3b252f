package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
)

// The freeze ioctls of linux/fs.h, _IOWR('X', 119, int) and
// _IOWR('X', 120, int), which golang.org/x/sys/unix does not name.
const (
	ioctlFIFREEZE = 0xc0045877
	ioctlFITHAW   = 0xc0045878
)

// source is a volume being copied, kept still while it is: detached under
// its lock, or, live, frozen for the copy.
type source struct {
	id    ID
	dir   string
	meta  Meta
	live  bool   // a container holds it
	mount string // where a live loopfile volume is mounted
}

// withSource runs fn with volume id of b as a source to copy. A volume that
// no container holds is locked, as h, for the while. One that a container
// holds is copied live if it is a loopfile volume, and refused if it is a
// dir volume. Either way the volume's snapshot operations are serialized
// (lockSnapshots).
func (s *Store) withSource(b Backend, id ID, h Holder, fn func(*source) error) (retErr error) {
	if err := s.checkBackend(b); err != nil {
		return err
	}
	dir := b.Dir(id)
	m, err := readMetaOf(dir, id)
	if err != nil {
		return err
	}
	src := &source{id: id, dir: dir, meta: m}
	lock := b.LockPath(id)
	err = s.locks.Acquire(lock, h, false)
	switch {
	case err == nil:
		defer func() {
			if err := s.locks.Release(lock, h); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("release lock of volume %s: %w", id, err))
			}
		}()
		if err := checkUnmounted(id, s.MountPath(id)); err != nil {
			return err
		}
	case errors.Is(err, ErrHeld) && m.Type == Loopfile:
		src.live, src.mount = true, s.MountPath(id)
	case errors.Is(err, ErrHeld):
		who := "another container"
		if holder, _ := ReadHolder(lock); holder.Container != "" {
			who = fmt.Sprintf("container %s (namespace %s, shim pid %d)", holder.Container, holder.Namespace, holder.PID)
		}
		return fmt.Errorf("%w: %w by %s: a dir volume cannot be copied while attached, since only its backend's whole filesystem could be frozen: delete that container first, or keep the volume on a loopfile backend",
			errdefs.ErrFailedPrecondition, ErrHeld, who)
	default:
		return err
	}
	unlock, err := lockSnapshots(dir, id)
	if err != nil {
		return err
	}
	defer unlock()
	return fn(src)
}

// copyImage copies the source's image to dst; a live one frozen for the
// while, which it returns.
func (src *source) copyImage(dst string, mode copyMode, progress func(done, total int64)) (string, time.Duration, error) {
	image := filepath.Join(src.dir, imageFile)
	if !src.live {
		method, err := copyImage(image, dst, mode, progress)
		return method, 0, err
	}
	thaw, err := freeze(filepath.Join(src.dir, snapshotsDir), src.mount, image)
	if err != nil {
		return "", 0, err
	}
	start := time.Now()
	method, err := copyImage(image, dst, mode, progress)
	frozen := time.Since(start)
	return method, frozen, errors.Join(err, thaw())
}

// copyTree copies the source's content tree into the new directory dst.
func (src *source) copyTree(dst string, progress func(done, total int64)) error {
	if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return copyTree(filepath.Join(src.dir, contentFS), dst, progress)
}

// freeze freezes the ext4 filesystem mounted at target, which must be the
// root of a loop mount of image: a path that is no longer mounted would
// name the filesystem under it, the state dir's, and freeze that. The
// mount is named in marker's directory (frozenFile) until it is thawed.
func freeze(markerDir, target, image string) (thaw func() error, retErr error) {
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: volume is attached but %s cannot be opened (%w): its container is starting or stopping, try again", errdefs.ErrUnavailable, target, err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
		}
	}()
	if err := loopMountOf(fd, image); err != nil {
		return nil, fmt.Errorf("%w: volume is attached but %s is not its mount (%w): its container is starting or stopping, try again", errdefs.ErrUnavailable, target, err)
	}
	marker := filepath.Join(markerDir, frozenFile)
	if err := writeJSON(marker, frozenMount{Path: target, Image: image}); err != nil {
		return nil, err
	}
	if err := unix.IoctlSetInt(fd, ioctlFIFREEZE, 0); err != nil {
		os.Remove(marker)
		return nil, fmt.Errorf("freeze %s: %w", target, err)
	}
	return func() error {
		defer unix.Close(fd)
		if err := unix.IoctlSetInt(fd, ioctlFITHAW, 0); err != nil {
			return fmt.Errorf("thaw %s: %w: run fsfreeze --unfreeze %s", target, err, target)
		}
		return os.Remove(marker)
	}, nil
}

// frozenMount is what frozenFile holds.
type frozenMount struct {
	Path  string `json:"path"`
	Image string `json:"image"`
}

// thawLeftover thaws the mount that a snapshot killed while it was frozen
// named in dir, if it is still the image's mount. A filesystem that is not
// frozen is success (EINVAL).
func thawLeftover(dir string) error {
	marker := filepath.Join(dir, frozenFile)
	b, err := readNoFollow(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var m frozenMount
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return os.Remove(marker) // cut short before the freeze
	}
	fd, err := unix.Open(m.Path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		if loopMountOf(fd, m.Image) == nil {
			if err := unix.IoctlSetInt(fd, ioctlFITHAW, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				unix.Close(fd)
				return fmt.Errorf("thaw %s, which a snapshot left frozen: %w", m.Path, err)
			}
		}
		unix.Close(fd)
	}
	return os.Remove(marker)
}

// loopMountOf checks that the directory open as fd is the root of a
// filesystem on a loop device whose backing file is image.
func loopMountOf(fd int, image string) error {
	var st, ist unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := unix.Stat(image, &ist); err != nil {
		return err
	}
	const ext4RootIno = 2
	if st.Ino != ext4RootIno {
		return errors.New("not the root of a filesystem")
	}
	dev, err := os.Readlink("/sys/dev/block/" + strconv.Itoa(int(unix.Major(st.Dev))) + ":" + strconv.Itoa(int(unix.Minor(st.Dev))))
	if err != nil {
		return errors.New("not on a block device")
	}
	loop, ok := host.LoopOf(filepath.Base(dev))
	if !ok {
		return errors.New("not on a loop device")
	}
	var bst unix.Stat_t
	if loop.Deleted || unix.Stat(loop.Backing, &bst) != nil || bst.Dev != ist.Dev || bst.Ino != ist.Ino {
		return fmt.Errorf("%s serves %s", loop.Dev(), loop.Backing)
	}
	return nil
}
