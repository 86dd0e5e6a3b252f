// Package state owns the layout of the state dir and the cleanup of what
// containers leave in it.
//
//	<state_dir>/journal/<namespace>/<container>   setup journal, locked while the container lives
//	<state_dir>/scratch/<namespace>/<container>/  scratch mounts and images
//	<state_dir>/locks/<namespace>/<volume>        volume locks
//	<state_dir>/mounts/<namespace>/<volume>       loopfile volumes while attached
//	<state_dir>/templates/                        a formatted image per disk scratch size, copied per container
//
// A container's storage is released by replaying its journal with Undoer:
// by the shim at task delete, by `shim delete` after a shim was killed, and
// by `persistctl gc` for whatever those could not finish.
package state
