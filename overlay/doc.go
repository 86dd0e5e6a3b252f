// Package overlay builds the overlay mounts of a container's storage: scratch
// areas (a writable, size-limited upper over the image's content at a path,
// on tmpfs or a loop-mounted ext4 image) and the machine-mode root, whose
// upper and work directories are moved into a persistent volume.
//
// Every host-side action is recorded in the container's journal before it is
// taken, so cleanup can undo a half-done setup. The overlays that a container
// sees are returned as OCI mounts for runc to make inside the container's
// mount namespace; only their uppers live on the host.
//
// Paths from the image are only ever Lstat-ed, never followed, so a symlink
// planted in an image or volume cannot point setup at the host.
package overlay
