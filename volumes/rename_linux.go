package volumes

import (
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace renames a to b in one step, failing with EEXIST when b
// exists: rename(2) alone would replace an empty directory at b.
func renameNoReplace(a, b string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE); err != nil {
		return &os.LinkError{Op: "rename", Old: a, New: b, Err: err}
	}
	return nil
}
