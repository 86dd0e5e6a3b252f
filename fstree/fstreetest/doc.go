//go:build linux

// Package fstreetest builds deep directory trees for tests, fast and
// without paths: what a container builds with `mkdir t && mv d t/ && mv t d`
// in a loop, made host-side in a fraction of the time.
//
// Linux only: it builds by descriptors, as fstree walks.
package fstreetest
