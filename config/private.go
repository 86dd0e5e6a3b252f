package config

import (
	"fmt"
	"io"
	"os"
)

// readPrivate reads a config file that only its owner may change: whoever
// can write the config decides what the shim mounts, as root.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := CheckPrivate(fi); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// CheckPrivate refuses a file or directory that a user other than its owner
// may write, or whose owner is neither root nor the user running this.
func CheckPrivate(fi os.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o): make it writable by its owner only (chmod go-w)", fi.Name(), fi.Mode().Perm())
	}
	if uid, ok := owner(fi); ok && uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d: it must belong to root (chown root)", fi.Name(), uid)
	}
	return nil
}
