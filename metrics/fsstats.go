//go:build linux

package metrics

import (
	"encoding/binary"
	"fmt"
)

// FSStats are a filesystem's counters, as statfs gives them.
type FSStats struct {
	BlockSize uint64
	Blocks    uint64 // usable blocks: the total less the filesystem's overhead
	Free      uint64 // free blocks, the reserved ones included
	Avail     uint64 // free blocks that unprivileged writers may take
	Files     uint64 // inodes
	FilesFree uint64
}

// The kubelet's volume stats: capacity is the usable size, used what is
// not free, available what an unprivileged writer may still take.
func (s FSStats) capacity() float64  { return float64(s.Blocks * s.BlockSize) }
func (s FSStats) used() float64      { return float64(sub(s.Blocks, s.Free) * s.BlockSize) }
func (s FSStats) available() float64 { return float64(s.Avail * s.BlockSize) }
func (s FSStats) inodesUsed() float64 {
	return float64(sub(s.Files, s.FilesFree))
}

func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

// ext4 superblock layout (Documentation/filesystems/ext4/super.rst). The
// superblock is 1024 bytes at offset 1024 of the image.
const (
	superblockOffset = 1024
	superblockSize   = 1024
	ext4Magic        = 0xEF53
	incompatExtents  = 0x40
	incompat64Bit    = 0x80
	rocompatBigalloc = 0x200
)

// parseSuperblock reads the counters of an ext4 superblock. The free
// counts are those the kernel wrote at the last commit: exact for an image
// that is not mounted, which is when it is read. The overhead (bitmaps,
// inode tables, journal) is taken from s_overhead_clusters when mke2fs
// recorded it; otherwise the capacity includes it, as with statfs's
// minixdf option.
func parseSuperblock(b []byte) (FSStats, error) {
	if len(b) < superblockSize {
		return FSStats{}, fmt.Errorf("ext4 superblock: %d bytes, want %d", len(b), superblockSize)
	}
	le := binary.LittleEndian
	if m := le.Uint16(b[0x38:]); m != ext4Magic {
		return FSStats{}, fmt.Errorf("not an ext4 image: magic %#x", m)
	}
	logBlock := le.Uint32(b[0x18:])
	if logBlock > 6 {
		return FSStats{}, fmt.Errorf("ext4 superblock: block size 2^%d KiB", logBlock)
	}
	s := FSStats{
		BlockSize: 1024 << logBlock,
		Files:     uint64(le.Uint32(b[0x0:])),
		FilesFree: uint64(le.Uint32(b[0x10:])),
	}
	blocks := uint64(le.Uint32(b[0x4:]))
	reserved := uint64(le.Uint32(b[0x8:]))
	free := uint64(le.Uint32(b[0xC:]))
	if le.Uint32(b[0x60:])&incompat64Bit != 0 {
		blocks |= uint64(le.Uint32(b[0x150:])) << 32
		reserved |= uint64(le.Uint32(b[0x154:])) << 32
		free |= uint64(le.Uint32(b[0x158:])) << 32
	}
	overhead := uint64(le.Uint32(b[0x248:]))
	if le.Uint32(b[0x64:])&rocompatBigalloc != 0 {
		overhead <<= le.Uint32(b[0x1C:]) - logBlock // clusters to blocks
	}
	// The kernel holds back 2% of the clusters, at most 4096, of a
	// filesystem with extents from unprivileged writers too
	// (ext4_calculate_resv_clusters); statfs leaves them out of f_bavail.
	if le.Uint32(b[0x60:])&incompatExtents != 0 {
		shift := le.Uint32(b[0x1C:]) - logBlock
		reserved += min((blocks>>shift)/50, 4096) << shift
	}
	s.Blocks = sub(blocks, overhead)
	s.Free = free
	s.Avail = sub(free, reserved)
	return s, nil
}
