package volumes

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
)

// Usage is what a volume's content takes.
type Usage struct {
	Bytes    uint64 `json:"bytes"`          // allocated, like du: holes are free
	Apparent uint64 `json:"apparent_bytes"` // the sum of file sizes
	Inodes   uint64 `json:"inodes"`         // files, directories and links; hard links once
	// Image is the bytes a loopfile volume's image takes on its backend,
	// filesystem overhead included.
	Image *uint64 `json:"image_bytes,omitempty"`
}

// Usage walks a volume's content, at any depth, without following links,
// going into mounts or counting a hard-linked file twice (fstree.Walk). A
// loopfile volume is walked where its container has it mounted, or, when
// detached, mounted read-only for the walk under the volume's lock, held as
// h.
func (s *Store) Usage(b Backend, id ID, h Holder) (u Usage, retErr error) {
	name := id.name
	dir := b.Dir(id)
	m, err := readMetaOf(dir, id)
	if err != nil {
		return u, err
	}
	if m.Type == Loopfile {
		n, err := allocated(filepath.Join(dir, imageFile))
		if err != nil {
			return u, fmt.Errorf("du volume %s: %w", name, err)
		}
		u.Image = &n
	}
	root, release, err := s.content(b, id, m, h, true)
	if err != nil {
		return u, fmt.Errorf("du volume %s: %w", name, err)
	}
	defer func() {
		if err := release(); err != nil && retErr == nil {
			retErr = fmt.Errorf("du volume %s: %w", name, err)
		}
	}()
	seen := map[fileID]bool{}
	err = fstree.Walk(root, func(e *fstree.Entry) error {
		st := &e.Stat
		if st.Nlink > 1 && !isDir(st) {
			if seen[idOf(st)] {
				return nil
			}
			seen[idOf(st)] = true
		}
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		u.Apparent += uint64(st.Size)
		return nil
	})
	if err != nil {
		return u, fmt.Errorf("du volume %s: %w", name, err)
	}
	return u, nil
}

// allocated is the bytes a file takes on disk.
func allocated(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return uint64(st.Blocks) * 512, nil
}
