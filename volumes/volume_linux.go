package volumes

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

const unixENOTEMPTY = unix.ENOTEMPTY

// checkFree refuses a loopfile volume larger than the backend's free space:
// a sparse image could be made, but would fail its writes later.
func checkFree(b Backend, size uint64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(b.Path, &st); err != nil {
		return fmt.Errorf("backend %s: %w", b.Name, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if size > free {
		return fmt.Errorf("%w: backend %s: a volume of %s does not fit in the %s free on %s: free space or ask for a smaller size",
			errdefs.ErrResourceExhausted, b.Name, units.BytesSize(float64(size)), units.BytesSize(float64(free)), b.Path)
	}
	return nil
}

// Syncfs flushes the whole filesystem that holds path.
func Syncfs(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Syncfs(fd)
}

// exchange swaps two paths atomically.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
