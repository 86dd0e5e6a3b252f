// Package fstree walks and removes directory trees that a tenant built:
// trees of any depth, with symlinks, device nodes, mount points and odd
// names in them, which host-side tools must read or delete without being
// led anywhere else and without running out of anything.
//
// It owns one thing, the way down and back up such a tree: a Cursor is the
// chain of directories from a root to the current one; Walk and RemoveAll
// are built on it.
//
// Invariants:
//   - Whatever the depth, a Cursor holds at most MaxOpen directory
//     descriptors, and one more for a moment while it climbs; Walk holds one
//     Cursor's (plus what its callback opens), RemoveAll one Cursor's and
//     the parent of what it removes. Go's os.RemoveAll and a recursive walk
//     hold one per level and fail with EMFILE on a tree a container builds
//     in seconds.
//   - A directory is entered from its parent by one name, with openat2
//     RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_BENEATH: never through
//     a symlink, never into another mount (a bind mount of the same
//     filesystem included). Other files are named by (directory
//     descriptor, name) and stat'ed with AT_SYMLINK_NOFOLLOW.
//   - A directory whose descriptor was closed to stay within MaxOpen is
//     reached again by ".." from its child, and used only if its device and
//     inode are the ones it had when it was entered; else the work stops
//     with ErrChanged. RemoveAll also checks them before each rmdir.
//   - No path is handed to the kernel but the root a caller gives, so no
//     depth meets PATH_MAX, and no path string is built unless a caller
//     asks for one (Entry.Path, Cursor.Path): Walk and RemoveAll cost time linear in the number of
//     entries, not in the sum of their depths. Paths in errors are cut with
//     Shorten, so an error stays one readable line.
//
// Callers must not keep an Entry, or a descriptor from it, past the
// callback it was given to, and must not close descriptors they did not
// open. A Cursor is not safe for concurrent use.
package fstree
