// Package overlay builds the overlay mounts of a container's storage: scratch
// areas (a writable, size-limited upper over the image's content at a path,
// on tmpfs or a loop-mounted ext4 image) and the machine-mode root, whose
// upper and work directories are moved into a persistent volume.
//
// Every host-side action is recorded in the container's journal before it is
// taken, so cleanup can undo a half-done setup. A scratch overlay is mounted
// on the host, from image layer directories opened beneath their layers and
// held open (OpenLower), and given to runc as a bind; the machine root's
// overlay is returned for containerd's runc shim to mount.
//
// Paths in the image are only ever opened beneath a layer with no symlink
// followed, and the overlays take the opened directories, never a path
// looked up again, so a symlink planted in an image, a volume or a bind
// mount cannot point setup at the host.
package overlay
