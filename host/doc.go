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
// can be replayed any number of times.
package host
