// Package cluster owns the etcd side of cluster backends: the cluster-wide
// lock of a volume, the lease it is bound to, and the self-fence of a holder
// that can no longer renew that lease.
//
// A volume's lock is the etcd key <prefix>volumes/<namespace>/<name>, or
// <prefix>volumes/<namespace>/@<tenant>/<name> (Key), put only if it does not
// exist, bound to the holder's lease, with a value (Holder) that names the
// node, namespace and container. It is the compare-create-revision
// transaction of the etcd client's concurrency.Mutex.TryLock, on one key per
// volume rather than one per waiter: nobody queues for a volume (a create
// that finds it held fails at once, as with the host-local flock), and a
// refused attach reads who holds it in the same round trip. The revision of
// that put, the key's create revision, is the lock's fencing token: etcd
// revisions only grow, so a later holder always has a larger token.
//
// The lease is the holder's promise to be alive. The etcd client's own
// KeepAlive (and concurrency.Session, built on it) is not used because it
// measures a lease's life from when a response arrives, and closes its
// channel only once that life is over: too late to stop writing before
// someone else may start. A Session renews with KeepAliveOnce and measures
// from when it sent each request.
//
// # Margins, and why they are safe
//
// Let T be the lease's TTL as etcd granted it. etcd's leader sets the
// lease's expiry to (its clock when it handles the grant or keep-alive) + T.
// It handles a request after the holder sent it, so, on the holder's
// monotonic clock, the lease cannot expire before sent + T, where sent is
// when the holder sent the grant or the last keep-alive that etcd answered
// (deadline). A leader change only extends leases (the new leader renews
// them all), never shortens them. Nothing here reads a wall clock, and no
// two clocks are compared: the one assumption is that the holder's clock
// and the leader's run at nearly the same rate. Quartz clocks are within
// 1e-4 of each other, NTP slews by at most 5e-4; T/3 is a thousand times
// that over any lease.
//
//   - Renew every T/3 after the last answered request (as etcd's client
//     does); a failed renewal is tried again every T/30 (at least 100 ms).
//   - Fence at deadline - T/3. By then the lease has been renewed for two
//     thirds of T without an answer; the fence has the last third, at least
//     a second with the smallest lease_ttl (3 s), to SIGKILL the container,
//     sync and unmount its volumes and release them. SIGKILL and the
//     container's exit take milliseconds; syncfs of an ext4 image on a
//     healthy shared filesystem well under a second. A keep-alive in
//     flight is cut off at the fence time.
//   - etcd answering that the lease is gone (it expired, or was revoked by
//     an operator) fences at once.
//
// A holder that is paused (SIGSTOP, a long stall, a suspended VM whose
// monotonic clock stood still) may wake up believing its lease alive when
// it is not. That is what the fencing token is for: a holder checks it, and
// its lease, right before it mounts.
//
// Another node's lock is granted only after etcd deletes the key, which is
// at the lease's expiry at the earliest; it mounts the volume after that,
// and only if its token is at least the one recorded in the volume
// (volumes.RecordFence), so a holder whose lock was lost while it was still
// setting up never mounts the volume again.
//
// What the margins cannot cover: a sync that hangs because the shared
// storage itself is cut off cannot finish, and the kernel may write the
// container's last dirty pages after the deadline. The fence logs whether
// it finished before the deadline.
//
// The lease ends with the process that renews it, the shim; the container
// does not. So that a shim that dies (with containerd, so that nobody runs
// `shim delete`) leaves nobody writing the volume when its lease expires,
// the shim runs a watchdog beside each cluster volume (persistctl cluster
// watch) that kills the container and unmounts the volume when the shim's
// end of a pipe closes without a release.
//
// Callers must not mount a cluster volume without a Lock from a Session
// whose Alive returns nil, and must release the lock only after the volume
// is unmounted here.
package cluster
