package host

import "fmt"

// MountError is a mount or an unmount that failed, with what was asked, as
// moby/sys/mount's mountError is. It unwraps to its cause, so that
// errors.Is(err, unix.EBUSY) and the like see the errno; callers that need
// the target or the source take them from here with errors.As rather than
// from the message.
type MountError struct {
	Op      string   // "mount" or "unmount"
	Type    string   // the filesystem type of a mount
	Source  string   // the source of a mount
	Target  string   // the mountpoint
	Options []string // the options of a mount
	Err     error    // the cause
}

// Error leaves the options out: containerd's mount errors, the usual
// cause, already say which flags and data the kernel was given.
func (e *MountError) Error() string {
	if e.Op != "mount" {
		return e.Op + " " + e.Target + ": " + e.Err.Error()
	}
	return fmt.Sprintf("mount %s %s at %s: %v", e.Type, e.Source, e.Target, e.Err)
}

func (e *MountError) Unwrap() error { return e.Err }
