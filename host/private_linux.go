package host

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// CheckPrivateDir refuses a directory that someone other than root (or
// the user running this) could change, and so plant links, mounts or
// files that setup would then trust: the directory itself must be owned
// by root and writable by its owner only, and each directory above it must
// be owned by root and either writable by its owner only or sticky (like
// /tmp, where others cannot rename or remove root's entries).
func CheckPrivateDir(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return &os.PathError{Op: "stat", Path: real, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%w: %s is not a directory", errdefs.ErrFailedPrecondition, dir)
	}
	if err := checkOwner(dir, real, &st, false); err != nil {
		return err
	}
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		if err := unix.Stat(p, &st); err != nil {
			return &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if err := checkOwner(dir, p, &st, true); err != nil {
			return err
		}
		if p == "/" {
			return nil
		}
	}
}

func checkOwner(dir, p string, st *unix.Stat_t, stickyOK bool) error {
	what := p
	if p != dir {
		what = fmt.Sprintf("%s, above %s,", p, dir)
	}
	if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d: it must belong to root (chown root %s)",
			errdefs.ErrFailedPrecondition, what, uid, p)
	}
	writable := st.Mode&0o022 != 0
	if writable && !(stickyOK && st.Mode&unix.S_ISVTX != 0) {
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o): make it writable by its owner only (chmod go-w %s)",
			errdefs.ErrFailedPrecondition, what, st.Mode&0o7777, p)
	}
	return nil
}
