package volumes

import (
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
)

// entry is one file met by walk.
type entry struct {
	dirfd int
	name  string
	st    unix.Stat_t
}

// walk visits root and everything under it with fstree.Walk: without
// following a link, crossing into another mount or running out of
// descriptors, whatever the depth.
func walk(root string, fn func(*entry) error) error {
	var e entry
	return fstree.Walk(root, func(fe *fstree.Entry) error {
		e = entry{dirfd: fe.Dir, name: fe.Name, st: fe.Stat}
		return fn(&e)
	})
}

// fileID is what makes hard links the same file.
type fileID struct{ dev, ino uint64 }

func idOf(st *unix.Stat_t) fileID { return fileID{st.Dev, st.Ino} }

func isDir(st *unix.Stat_t) bool { return st.Mode&unix.S_IFMT == unix.S_IFDIR }
