//go:build linux

// Package containerdtest runs a private containerd for the integration
// tests and the bench: a daemon whose root, state, sockets, config, log and
// pid file all live in one directory, with the shim under test first on its
// PATH, started and stopped by scripts/containerd.sh, which writes its
// config. It also finds the tools scripts/install-deps.sh installed, builds
// the repository's commands and the busybox test image, and lists what a
// test left mounted.
//
// Everything here is by path and by PID: a Daemon never kills a process by
// name, and Remove never removes a directory that still has a mount in it.
//
// Linux only, as containerd's runc shim is.
package containerdtest
