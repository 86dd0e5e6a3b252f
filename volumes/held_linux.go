package volumes

import (
	"encoding/json"
	"os"

	"golang.org/x/sys/unix"
)

// LockHolder reports whether anyone holds the lock at path, shared or
// exclusive, and who when an exclusive holder wrote it. Unlike ReadHolder it
// sees shared holders, which write no name: their Holder is empty.
func LockHolder(path string) (Holder, bool) {
	f, err := os.Open(path)
	if err != nil {
		return Holder{}, false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return Holder{}, false // a stale file
	}
	var h Holder
	json.NewDecoder(f).Decode(&h) // empty for shared holders
	return h, true
}
