// Package host is what storage setup does to the host: mounting, unmounting
// and making filesystem images. Setup code takes a Mounter so that its
// ordering and undo logic can be tested with a recording fake, without root.
//
// An image's space is reserved (every block allocated) when it is made,
// unless ImageOptions.Sparse asks for overcommit: a sparse image whose host
// filesystem fills up loses writes, and the filesystem inside sees EIO or
// aborts, where it should have seen ENOSPC. A reserved image is never a
// reflink, and nothing that makes it (mkfs discarding, a zeroing that
// punches holes) may leave it with holes.
//
// Unmount treats "not mounted" and "no such path" as success, so that cleanup
// can be replayed any number of times. A mount or unmount that fails is a
// *MountError, which says what was asked and unwraps to the cause.
//
// MountsUnder and Loops read what the host has mounted and which loop
// devices it has attached: gc, the volume store and the test harness ask
// here rather than read mountinfo and sysfs themselves.
package host
