package host

import (
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/config"
)

// Mounter mounts and unmounts filesystems and makes filesystem images.
type Mounter interface {
	// Mount mounts m at target. A "loop" option attaches Source to an
	// autoclear loop device, which detaches itself at the last unmount.
	Mount(m mount.Mount, target string) error
	// Unmount unmounts target; a target that is not mounted is success.
	Unmount(target string) error
	// MakeImage creates a file of size bytes at path holding an empty ext4
	// filesystem, as o says.
	MakeImage(path string, size uint64, o ImageOptions) error
}

// ImageOptions says what kind of image MakeImage makes. The zero value is
// a throwaway image (scratch) whose space is reserved.
type ImageOptions struct {
	// Journaled gives the filesystem a journal, for a volume that must come
	// back consistent after a crash. Throwaway scratch has none.
	Journaled bool
	// Sparse leaves the image's blocks unallocated until they are written
	// (overcommit). By default every block is allocated when the image is
	// made, so the filesystem inside can always take its size: a write to
	// a sparse image that finds its host filesystem full is lost, and the
	// filesystem inside sees EIO, aborts its journal or is left corrupt,
	// where it should have seen ENOSPC.
	Sparse bool
}

// CheckImageSize refuses a size that mkfs.ext4 cannot format, or past
// config.MaxSize, with the limit to use instead. A journaled image needs
// room for its journal. The limits are config's: it promises them to
// operators and checks them when a config is read, and it imports nothing
// of containerd, so it cannot take them from here; this is the check for
// sizes that come from elsewhere (persistctl volumes create --size).
func CheckImageSize(size uint64, journaled bool) error {
	lo, what := config.MinDiskSize, "disk scratch"
	if journaled {
		lo, what = config.MinVolumeSize, "a loopfile volume"
	}
	switch {
	case config.Size(size) < lo:
		return fmt.Errorf("%w: %s of %s is too small for an ext4 image: use at least %s", errdefs.ErrInvalidArgument, what, config.Size(size), lo)
	case config.Size(size) > config.MaxSize:
		return fmt.Errorf("%w: %s of %s is too large: sizes go up to %s", errdefs.ErrInvalidArgument, what, config.Size(size), config.MaxSize)
	}
	return nil
}

// Extent is a run of a file's bytes that holds data.
type Extent struct{ Off, Len int64 }

// SyncPath flushes the file or directory at path to disk: a directory, to
// make the entries just made or renamed in it durable.
func SyncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
