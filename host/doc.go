// Package host is what storage setup does to the host: mounting, unmounting
// and making filesystem images. Setup code takes a Mounter so that its
// ordering and undo logic can be tested with a recording fake, without root.
//
// Unmount treats "not mounted" and "no such path" as success, so that cleanup
// can be replayed any number of times.
package host
