//go:build linux

// Package state owns the layout of the state dir and the cleanup of what
// containers leave in it.
//
//	<state_dir>/journal/<namespace>/<container>   setup journal, locked while the container lives
//	<state_dir>/scratch/<namespace>/<container>/  scratch mounts and images
//	<state_dir>/mounts/<namespace>/[@<tenant>/]<volume>  loopfile volumes while attached (volumes.Store.MountPath)
//	<state_dir>/templates/                        a formatted image per disk scratch size, copied per container
//	<state_dir>/trash/                            released scratch images, unlinked off the delete path (trash.go)
//	<state_dir>/metrics/                          the shim's setup and teardown times, and the cache of dir volume walks (package metrics)
//
// Dir derives each of these paths from the one root; the packages that keep
// files in them take the directory from Dir and name only what is inside
// it. The volume store takes its directories from Dir.Volumes, and finds a
// volume's place below them as it does in a backend.
//
// Volume locks are not here: they live in each backend, beside the volumes
// (volumes.Backend.LockPath), so that every state dir sharing a backend sees
// them. gc still removes stale ones from <state_dir>/locks, where they were
// kept before.
//
// A container's storage is released by replaying its journal with Undoer:
// by the shim at task delete, by `shim delete` after a shim was killed, and
// by `persistctl gc` for whatever those could not finish.
//
// Linux only: it reads mountinfo and loop devices, through volumes.
package state
