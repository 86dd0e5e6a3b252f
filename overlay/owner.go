package overlay

import (
	"errors"
	"io/fs"

	"github.com/containerd-persist/containerd-persist/host"
)

// ErrSymlink is returned by LookupOwner when the path, or a directory on the
// way to it, is a symlink in the image.
var ErrSymlink = errors.New("a symlink in the image is on the way")

// DefaultOwner is used for a scratch path the image lacks: world-writable with
// the sticky bit, like /tmp, since scratch is where any user writes.
var DefaultOwner = host.Owner{Mode: 0o777 | fs.ModeSticky}
