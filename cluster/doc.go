// Package cluster owns the etcd side of cluster backends: the cluster-wide
// lock of a volume, the lease it is bound to, and the self-fence of a holder
// that can no longer renew that lease.
//
// The holder is not the shim. The cluster volumes of a state dir's shims
// are held by one process, the node's agent, `persistctl cluster agent`
// (Agent), which the first shim that needs it starts, and which each shim
// talks to over a unix socket, one connection a lock (package cluster/hold,
// which imports no etcd): the etcd client's package init would otherwise
// add about 2 ms of CPU to every exec of every shim, cluster or not. The
// agent keeps its connection to etcd and a lease granted ahead, so that a
// lock costs one transaction; each lock still has its own lease, for one
// volume, so that what happens to one lock (a fence, its shim's death)
// happens to it alone. Below, "the holder" is the agent, for one lock.
//
// A lock may be taken ahead: `shim start` asks for it on behalf of the
// daemon it started, and the agent parks it until that daemon's request
// (same volume, container and PID) claims it, or releases it after 30 s.
// Nothing is mounted under a lock before its shim asked "alive", so a
// connection that ends before that question releases the lock.
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
//     sync and unmount its volume. The holder does this by itself, with
//     nothing asked of the shim: it kills the container's init through a
//     pidfd taken from the bundle's init.pid, syncs and unmounts the
//     volume's mount on this host, then tells the shim, which releases the
//     rest of the container's storage. SIGKILL and the container's exit
//     take milliseconds; syncfs of an ext4 image on a healthy shared
//     filesystem well under a second. A keep-alive in flight is cut off at
//     the fence time.
//   - etcd answering that the lease is gone (it expired, or was revoked by
//     an operator) fences at once.
//
// A holder that is paused (SIGSTOP, a long stall, a suspended VM whose
// monotonic clock stood still) may wake up believing its lease alive when
// it is not. That is what the fencing token is for: the shim records it in
// the volume and then asks the holder whether its lease is alive (Alive,
// over the socket), right before it mounts.
//
// That the margins run in another process than the shim changes none of
// them: the holder renews and measures on its own monotonic clock, as the
// shim did, and the process that can stop the container before the
// deadline is the one that knows the deadline. What is new is that either
// process may die alone:
//   - The shim dies (with containerd, so that nobody runs `shim delete`;
//     the container lives on): the agent reads the end of the lock's
//     connection without "release", kills the container and syncs and
//     unmounts the volume at once, and stops renewing without revoking: the
//     lease expires by itself (or persistctl gc releases the lock), and by
//     then nobody here writes the volume.
//   - The agent dies: its leases are renewed no more. Each shim reads the
//     end of its connections at once, kills the container and releases its
//     storage. A live agent had not fenced, so each lease lives at least
//     T/3 past that moment: the same margin as the agent's own fence.
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
// Callers must not mount a cluster volume without a Lock from a Session
// whose Alive returns nil (for a shim: a token from the agent, recorded,
// then the agent's Alive), and must release the lock only after the volume
// is unmounted here.
package cluster
