// Package journal records the steps of a container's storage setup before
// they are taken, so that cleanup can undo a half-done setup even when the
// process that started it was killed.
//
// A journal is an append-only file of JSON lines, one Step each. Setup calls
// Record before every mount, directory, file or lock it makes; Undo replays
// the steps in reverse. Undo is idempotent: a step already undone, or never
// done because the process died between Record and the action, is success.
//
// Invariants: the journal is removed only after every step was undone, so a
// failed cleanup can be retried (by the next delete or by persistctl gc).
// Undo never removes a directory recursively: a directory that is still a
// mountpoint or not empty stays, and the error says so.
package journal
