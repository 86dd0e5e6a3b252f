// Package shim is the containerd runtime v2 shim io.containerd.persist.v1. It
// wraps containerd's runc task service and, before a container is created,
// gives it the storage that its class asks for; after the task is deleted,
// or after containerd cleans up a killed shim, it undoes that setup.
//
// The shim owns class resolution (runtime options, annotations, default) and
// the order of setup. The mounts themselves live in the overlay and volumes
// packages; every host-side step is journaled before it is taken.
//
// A shim's main calls Register, then containerd's shim.RunShim with
// NewManager. Test builds pass WithHooks to stop at chosen steps; the
// release build has no hooks.
package shim
