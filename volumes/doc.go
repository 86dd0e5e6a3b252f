// Package volumes owns named persistent volumes: where they live (backends),
// their metadata, and who holds them (locks).
//
// A volume is identified by (containerd namespace, name). Each backend keeps a
// volume as the directory <path>/<namespace>/<name>, holding volume.json and
// either its content (dir backend: fs/) or a sparse ext4 image (loopfile
// backend: disk.img, loop-mounted under the state dir while attached).
//
// Invariants:
//   - A volume is created in a hidden temporary directory beside its final
//     place and renamed into place whole: a half-made volume is never visible.
//   - A volume is attached under its lock (state_dir/locks/<namespace>/<name>):
//     exclusive, or shared for volumes that say so. The lock is an flock held
//     by the shim process, so it ends by itself when the shim dies.
//   - Names match [a-z0-9][a-z0-9._-]{0,62}; they never hold "/" or "..".
//   - Host-side code opens volume content without following symlinks that a
//     container may have planted there.
package volumes
