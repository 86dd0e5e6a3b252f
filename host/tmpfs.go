package host

import "strconv"

// minTmpfsInodes keeps a small tmpfs able to hold a small tree.
const minTmpfsInodes = 1024

// TmpfsOptions are the mount options that bound a tmpfs of size bytes: its
// size, and its inodes at one per 4KiB page (at least minTmpfsInodes). The
// caller adds mode, owner, nodev and nosuid. Without nr_inodes the kernel
// allows half of RAM's pages in inodes whatever the size, and inodes are
// kernel memory outside the size limit: 200k empty files in a 64MiB tmpfs
// pinned about 390MB of slab.
func TmpfsOptions(size uint64) []string {
	return []string{
		"size=" + strconv.FormatUint(size, 10),
		"nr_inodes=" + strconv.FormatUint(max(size/4096, minTmpfsInodes), 10),
	}
}
