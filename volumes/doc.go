//go:build linux

// Package volumes owns named persistent volumes: their identity, where they
// live (backends), their metadata, and who holds them (locks).
//
// A volume is identified by an ID: (containerd namespace, tenant, name),
// made only by NewID. The tenant is the pod's Kubernetes namespace under
// CRI, and none elsewhere. Each backend keeps a volume as the directory
// <path>/<namespace>/<name>, or <path>/<namespace>/@<tenant>/<name>, holding
// volume.json and either its content (dir backend: fs/) or an ext4 image
// whose space is reserved (loopfile backend: disk.img, loop-mounted under
// the state dir while attached).
//
// Invariants:
//   - A volume is created in a hidden temporary directory beside its final
//     place and renamed into place whole: a half-made volume is never visible.
//   - A volume is attached under its lock, <path>/.locks/<its place>:
//     exclusive, or shared for volumes that say so. The lock is an flock held
//     by the shim process, so it ends by itself when the shim dies; it lives
//     in the backend, so every state dir that shares the backend sees it.
//   - Names are one path component: no "/", never "." or ".."; a name over
//     63 bytes is kept whole in volume.json and its directory name is cut and
//     hashed (diskName), with a "~" that no name holds.
//   - A backend that others may write is refused before anything in it is
//     read or written.
//   - Host-side code opens volume content without following symlinks that a
//     container may have planted there, and walks and removes trees of any
//     depth through fstree, with a bounded number of descriptors.
//   - A volume's snapshots live in its directory, <volume>/snapshots/<snap>
//     (snapshot.json and a copy of disk.img or fs/), so no volume name meets
//     them and they are renamed and removed with the volume. A snapshot,
//     restore or clone is copied into a hidden .creating-<volume>-<random>
//     beside the volume, which gc removes once the volume's lock is free,
//     and renamed (or, for content, swapped) into place in one step: a kill
//     at any point leaves the volume whole. Snapshot operations of one
//     volume are serialized by an flock on its snapshots directory.
//   - Copies follow the backend's space rule: a copy that a volume will
//     write (restore, clone) is reserved unless the backend overcommits; a
//     reflink (FICLONE), whose shared blocks need new space when written,
//     is used only on overcommit backends. A held loopfile volume is copied
//     with its filesystem frozen (FIFREEZE) for the copy; a held dir volume
//     is never copied, since only its backend's whole filesystem could be
//     frozen. Restore and reset refuse a held volume.
//
// Linux only: locks are flocks, images are loop-mounted ext4.
package volumes
