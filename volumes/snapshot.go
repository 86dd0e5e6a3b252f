//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/containerd/errdefs"
)

// Snapshot is a point-in-time copy of a volume, kept beside it in
// <volume>/snapshots/<name>: snapshot.json and the copy, disk.img or fs/ as
// the volume has it. It lives in the volume's directory, so it is renamed,
// and removed, with the volume, and no volume name can meet it.
type Snapshot struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Type    string    `json:"type"`           // the volume's: Dir or Loopfile
	Size    uint64    `json:"size,omitempty"` // a loopfile volume's size
	// Method says how it was made: MethodReflink, MethodCopy or MethodTree.
	Method string `json:"method"`
	// Live says it was taken while a container held the volume, its
	// filesystem frozen for Frozen.
	Live   bool          `json:"live,omitempty"`
	Frozen time.Duration `json:"frozen_ns,omitempty"`
	// Image and Lower are the volume's at the time: a machine root volume
	// restored from it is back over that image.
	Image *Image `json:"image,omitempty"`
	Lower string `json:"lower,omitempty"`
	// Used is the bytes a loopfile snapshot's image takes on its backend,
	// as listed; blocks a reflink shares with the volume count in both.
	Used *uint64 `json:"used,omitempty"`
}

// How a copy was made.
const (
	// MethodReflink shares the image's blocks (FICLONE on XFS or btrfs):
	// nothing is copied, and new space is taken only as either is written.
	MethodReflink = "reflink"
	// MethodCopy copies the image's data extents, leaving holes holes.
	MethodCopy = "copy"
	// MethodReserved copies the data extents into an image whose every
	// block was allocated first: the copy is a volume that can always take
	// its size (DESIGN.md, Space).
	MethodReserved = "reserved copy"
	// MethodTree copies a dir volume's tree, file by file.
	MethodTree = "tree copy"
)

// CopyOptions are the options of snapshot, restore and clone.
type CopyOptions struct {
	// Holder is who shows in the volume's lock while the copy is made.
	Holder Holder
	// Progress, when set, is told the bytes copied so far and the bytes to
	// copy (0 when unknown), from the copying goroutine.
	Progress func(done, total int64)
}

const (
	snapshotsDir = "snapshots"
	snapshotFile = "snapshot.json"
	// frozenFile, in a volume's snapshots directory, names the mount that
	// a snapshot froze: it is written before FIFREEZE and removed after
	// FITHAW, so the next snapshot operation thaws a filesystem that a
	// killed one left frozen.
	frozenFile = ".frozen"
	// resetPrefix names the root layer directories that a reset moved
	// aside and is removing; a reset cut short leaves them, and the next
	// one removes them.
	resetPrefix = ".reset-"
)

// ValidateSnapshotName checks a snapshot name: 1 to 63 letters, digits,
// ".", "_" or "-", starting with a letter or digit.
func ValidateSnapshotName(name string) error {
	ok := name != "" && len(name) <= 63 && isAlnum(name[0])
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w: snapshot name %s: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit",
			errdefs.ErrInvalidArgument, Quote(name))
	}
	return nil
}

// DefaultSnapshotName names a snapshot taken at t when none is given.
func DefaultSnapshotName(t time.Time) string {
	return t.UTC().Format("20060102T150405Z")
}

// snapshotDir is where snapshot name of the volume in dir lives.
func snapshotDir(dir, name string) string { return filepath.Join(dir, snapshotsDir, name) }

// readSnapshot reads the metadata of snapshot name of the volume in dir.
func readSnapshot(dir, name string) (Snapshot, error) {
	var snap Snapshot
	if err := ValidateSnapshotName(name); err != nil {
		return snap, err
	}
	b, err := readNoFollow(filepath.Join(snapshotDir(dir, name), snapshotFile))
	if errors.Is(err, fs.ErrNotExist) {
		return snap, fmt.Errorf("%w: snapshot %s does not exist: see persistctl volumes snapshot ls", errdefs.ErrNotFound, Quote(name))
	}
	if err != nil {
		return snap, err
	}
	if err := json.Unmarshal(b, &snap); err != nil {
		return snap, fmt.Errorf("read snapshot %s: %w", name, err)
	}
	snap.Name = name
	return snap, nil
}
