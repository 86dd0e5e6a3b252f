package host

import "github.com/containerd/containerd/v2/core/mount"

// Mounter mounts and unmounts filesystems and makes filesystem images.
type Mounter interface {
	// Mount mounts m at target. A "loop" option attaches Source to an
	// autoclear loop device, which detaches itself at the last unmount.
	Mount(m mount.Mount, target string) error
	// Unmount unmounts target; a target that is not mounted is success.
	Unmount(target string) error
	// MakeImage creates a sparse file of size bytes at path holding an empty
	// ext4 filesystem; journaled is false for throwaway scratch.
	MakeImage(path string, size uint64, journaled bool) error
}
