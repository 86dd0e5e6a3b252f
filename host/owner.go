package host

import (
	"io/fs"
	"os"
)

// Owner is the mode and owner of a directory.
type Owner struct {
	Mode fs.FileMode // permission and sticky bits
	UID  int
	GID  int
}

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
