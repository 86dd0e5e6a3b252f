package fstree

import "errors"

// ErrChanged is returned when a directory met on the way back up is not the
// one that was entered on the way down: something renamed or replaced part
// of the tree while it was read or removed.
var ErrChanged = errors.New("the directory tree changed while it was read: try again once nothing writes to it")
