package host

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// Loop is an attached loop device, as sysfs shows it.
type Loop struct {
	Name    string // like "loop3"
	Backing string // the path of its backing file when it was attached
	// Deleted is set when that file has been unlinked since: Backing may
	// now name another file, or none.
	Deleted bool
}

// Dev is the device's path, like /dev/loop3.
func (l Loop) Dev() string { return "/dev/" + l.Name }

// Loops lists the attached loop devices. One that is detached while they
// are read is left out.
func Loops() []Loop {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	var loops []Loop
	for _, f := range files {
		name := strings.Split(f, "/")[3]
		if l, ok := LoopOf(name); ok {
			loops = append(loops, l)
		}
	}
	return loops
}

// LoopOf returns the loop device name (like "loop3" or "/dev/loop3"), and
// false if it is not attached.
func LoopOf(name string) (Loop, bool) {
	name = filepath.Base(name)
	b, err := os.ReadFile(filepath.Join("/sys/block", name, "loop", "backing_file"))
	if err != nil {
		return Loop{}, false // never attached, or detached meanwhile
	}
	backing, deleted := strings.CutSuffix(string(bytes.TrimSpace(b)), " (deleted)")
	return Loop{Name: name, Backing: backing, Deleted: deleted}, true
}
