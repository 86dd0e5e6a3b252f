package overlay

import (
	"errors"
	"io/fs"
	"os"
)

// Owner is the mode and owner of a directory.
type Owner struct {
	Mode fs.FileMode // permission and sticky bits
	UID  int
	GID  int
}

// ErrSymlink is returned by LookupOwner when the path, or a directory on the
// way to it, is a symlink in the image.
var ErrSymlink = errors.New("a symlink in the image is on the way")

// DefaultOwner is used for a scratch path the image lacks: world-writable with
// the sticky bit, like /tmp, since scratch is where any user writes.
var DefaultOwner = Owner{Mode: 0o777 | fs.ModeSticky}

// Mkdir makes dir with the owner's mode and ownership.
func (o Owner) Mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	// Chmod after Mkdir: the umask would clear bits, and Mkdir drops sticky.
	if err := os.Chmod(dir, o.Mode); err != nil {
		return err
	}
	return os.Lchown(dir, o.UID, o.GID)
}
