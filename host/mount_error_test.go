package host

import (
	"errors"
	"io/fs"
	"testing"
)

func TestMountErrorUnwraps(t *testing.T) {
	for _, tt := range []struct {
		err  *MountError
		want string
	}{
		{&MountError{Op: "mount", Type: "ext4", Source: "/img", Target: "/mnt", Options: []string{"loop"}, Err: fs.ErrNotExist},
			"mount ext4 /img at /mnt: file does not exist"},
		{&MountError{Op: "unmount", Target: "/mnt", Err: fs.ErrPermission}, "unmount /mnt: permission denied"},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		var err error = tt.err
		if !errors.Is(err, tt.err.Err) {
			t.Errorf("errors.Is(%v, its cause) = false", err)
		}
		var me *MountError
		if !errors.As(error(wrap{err}), &me) || me != tt.err {
			t.Errorf("errors.As through a wrapper did not find the *MountError")
		}
	}
}

type wrap struct{ err error }

func (w wrap) Error() string { return "setup: " + w.err.Error() }
func (w wrap) Unwrap() error { return w.err }
