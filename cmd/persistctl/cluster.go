package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/cluster"
	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/metrics/timings"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "show the nodes, leases and holders of cluster backends' volumes, from etcd",
		Description: "Needs a [cluster] table in the config. A lock's TTL is what is left of its holder's lease:\n" +
			"a node that died releases its volumes when it reaches 0.",
		Flags:  []cli.Flag{jsonFlag},
		Action: clusterShow,
		Subcommands: []*cli.Command{{
			Name:   "agent",
			Hidden: true, // started by the shim, one per state dir
			Usage:  "hold cluster volumes' etcd locks for the shims, and stop a container when its lease or its shim is lost",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "socket", Required: true, Usage: "serve the shims on this unix socket"},
				&cli.DurationFlag{Name: "idle", Value: agentIdle, Usage: "exit once no lock has been held for this long"},
			},
			Action: clusterAgent,
		}},
	}
}

// dialCluster connects to the config's etcd.
func dialCluster(cfg *config.Config) (*cluster.Client, error) {
	if cfg.Cluster == nil {
		return nil, fmt.Errorf("config %s has no [cluster] table: add one with etcd = [\"http://HOST:2379\"] to use cluster backends", cfg.Source)
	}
	return cluster.Dial(cluster.OptionsOf(cfg.Cluster))
}

// clusterNode is a node as persistctl cluster shows it.
type clusterNode struct {
	Node   string  `json:"node"`
	Leases []int64 `json:"leases"`
	Held   int     `json:"held"`
}

func clusterShow(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	cl, err := dialCluster(cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	held, err := cl.Holders(c.Context)
	if err != nil {
		return err
	}
	nodes := map[string]*clusterNode{}
	for _, h := range held {
		n := nodes[h.Holder.Node]
		if n == nil {
			n = &clusterNode{Node: h.Holder.Node, Leases: []int64{}}
			nodes[h.Holder.Node] = n
		}
		n.Held++
		if !slices.Contains(n.Leases, h.Lease) {
			n.Leases = append(n.Leases, h.Lease)
		}
	}
	var list []*clusterNode
	for _, name := range sortedKeys(nodes) {
		list = append(list, nodes[name])
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(struct {
			Node    string         `json:"this_node"`
			Nodes   []*clusterNode `json:"nodes"`
			Holders []cluster.Held `json:"holders"`
		}{cfg.Cluster.Node, list, held})
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "NODE\tLEASES\tVOLUMES HELD\n")
	for _, n := range list {
		leases := make([]string, len(n.Leases))
		for i, l := range n.Leases {
			leases[i] = strconv.FormatInt(l, 16)
		}
		name := n.Node
		if name == cfg.Cluster.Node {
			name += " (this node)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\n", name, strings.Join(leases, ","), n.Held)
	}
	fmt.Fprintf(w, "\nVOLUME\tNAMESPACE\tNODE\tCONTAINER\tSINCE\tLEASE\tTTL\tTOKEN\n")
	for _, h := range held {
		vol := h.Holder.Volume
		if h.Holder.Tenant != "" {
			vol = h.Holder.Tenant + "/" + vol
		}
		ttl := "expired"
		if h.TTL >= 0 {
			ttl = h.TTL.String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%x\t%s\t%d\n", vol, h.Holder.Namespace, h.Holder.Node, h.Holder.Container,
			h.Holder.Since.Format(time.RFC3339), h.Lease, ttl, h.Token)
	}
	return w.Flush()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clusterHolders returns who holds each volume of cluster backends, by
// "namespace/[tenant/]name"; nil without [cluster] or cluster backends.
func clusterHolders(ctx context.Context, cfg *config.Config) (map[string]cluster.Holder, error) {
	if cfg.Cluster == nil || !slices.ContainsFunc(sortedKeys(cfg.Backends), func(n string) bool { return cfg.Backends[n].Cluster }) {
		return nil, nil
	}
	cl, err := dialCluster(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	held, err := cl.Holders(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]cluster.Holder{}
	for _, h := range held {
		out[holderKey(h.Holder.Namespace, h.Holder.Tenant, h.Holder.Volume)] = h.Holder
	}
	return out, nil
}

func holderKey(ns, tenant, name string) string {
	if tenant == "" {
		return ns + "/" + name
	}
	return ns + "/" + tenant + "/" + name
}

// agentIdle is how long the cluster agent outlives the last lock it held:
// a node that starts cluster containers now and then keeps its connection
// to etcd, and a lease granted ahead.
const agentIdle = 10 * time.Minute

// clusterAgent is started by the first shim of a state dir that attaches a
// cluster volume, and serves every shim of it (package cluster/hold): it
// takes the volumes' locks in etcd and keeps their leases alive, so that
// the shim never links the etcd client. It stops a container (its init is
// killed) and syncs and unmounts its volume when the lease cannot be
// renewed in time, or when the shim ends without a release (it died, maybe
// with containerd, while the container lives on): the lease then ends
// without them, and another node may take the volume, which must not find
// it still written here.
//
// One agent serves a socket: the one that holds the lock file. Another
// waits for it, and exits if it still serves; one that closes (idle)
// removes its socket before it lets go of the lock file.
func clusterAgent(c *cli.Context) error {
	signal.Ignore(unix.SIGPIPE) // a shim that is gone reads nothing; its connection must not cut a fence short
	sock := c.String("socket")
	lf, err := os.OpenFile(filepath.Join(filepath.Dir(sock), hold.LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	if conn, err := net.Dial("unix", sock); err == nil {
		conn.Close()
		return nil // another agent serves
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", sock) // closing it removes it
	if err != nil {
		return fmt.Errorf("cluster agent: %w", err)
	}
	lf.Truncate(0)
	fmt.Fprintf(lf, "%d\n", os.Getpid())
	a := cluster.NewAgent(func(ctx context.Context, req hold.Request) cluster.Stop { return holdStop(ctx, c, req) }, c.App.ErrWriter)
	err = a.Serve(l, c.Duration("idle"))
	a.Close()
	lf.Truncate(0)
	if err != nil {
		return fmt.Errorf("cluster agent: %w", err)
	}
	return nil
}

// holdStop is how the agent stops the container of req and unmounts its
// volume: the container's init is watched for from now on, until ctx ends
// with the lock.
func holdStop(ctx context.Context, c *cli.Context, req hold.Request) cluster.Stop {
	initPID := filepath.Join(req.Bundle, "init.pid")
	// A pidfd, once the container's init is known, kills that process and
	// no other that reuses its PID later.
	pidfd := make(chan int, 1) // -1 when it is not known
	stopWatch := make(chan struct{})
	go func() {
		fd := -1
		defer func() { pidfd <- fd }()
		for fd < 0 {
			if f, err := openInit(initPID); err == nil {
				fd = f
				break
			}
			select {
			case <-stopWatch:
				return
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		select {
		case <-stopWatch:
		case <-ctx.Done(): // the lock is released: its container is not stopped
			unix.Close(fd)
			fd = -1
		}
	}()
	return func(why error, deadline time.Time) error {
		close(stopWatch)
		fd := <-pidfd
		if fd < 0 {
			fd, _ = openInit(initPID)
		}
		if fd >= 0 {
			defer unix.Close(fd)
		}
		start := time.Now()
		var errs []error
		if fd >= 0 {
			if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("kill the container's init: %w", err))
			}
			// The init has exited when its pidfd turns readable.
			wait := max(time.Until(deadline), 100*time.Millisecond)
			if n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(wait.Milliseconds())); err == nil && n == 0 {
				errs = append(errs, errors.New("the container's init still runs at the lease's deadline"))
			}
		}
		if err := volumes.Syncfs(req.Mount); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("sync %s: %w", req.Mount, err))
		}
		if err := (host.Linux{}).Unmount(req.Mount); err != nil {
			errs = append(errs, err)
		}
		err := errors.Join(errs...)
		left := time.Until(deadline)
		fmt.Fprintf(c.App.ErrWriter, "%s persistctl cluster agent: fence: %v: killed the container of %s and unmounted %s in %s, %s before the lease's deadline; errors: %v\n",
			time.Now().UTC().Format(time.RFC3339Nano), why, req.Bundle, req.Mount, time.Since(start).Round(time.Millisecond), left.Round(time.Millisecond), err)
		recordFence(c, req, time.Since(start), left, err)
		return err
	}
}

// recordFence records a fence for persistctl metrics, in the state dir
// whose agent this is: its socket is <state_dir>/cluster/agent.sock.
func recordFence(c *cli.Context, req hold.Request, took, left time.Duration, err error) {
	sock := c.String("socket")
	stateDir := filepath.Dir(filepath.Dir(sock))
	if state.Dir(stateDir).Cluster() != filepath.Dir(sock) {
		return // an agent of a socket elsewhere: no state dir to record in
	}
	r := timings.Record{Op: timings.Fence, Namespace: req.Namespace, Container: req.Container, Seconds: took.Seconds(),
		Tenant: req.Tenant, Volume: req.Volume, Backend: req.Backend, Outcome: timings.Stopped}
	switch {
	case err != nil:
		r.Outcome = timings.Failed
	case left <= 0:
		r.Outcome = timings.Late
	}
	if err := timings.Append(stateDir, r); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s persistctl cluster agent: record the fence for metrics: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
	}
}

// openInit opens a pidfd of the process that path names.
func openInit(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1, err
	}
	return unix.PidfdOpen(pid, 0)
}

// gcCluster releases the cluster locks that this node left behind: held in
// its name by a shim that is gone, for a volume no longer mounted here. A
// lock left behind would otherwise keep the volume from every node until
// the lease expires, or for good if the lease is kept alive by another
// container of the same shim.
func gcCluster(c *cli.Context, cfg *config.Config, results []gcResult, errs []error) ([]gcResult, []error) {
	if cfg.Cluster == nil {
		return results, errs
	}
	cl, err := dialCluster(cfg)
	if err != nil {
		return results, append(errs, err)
	}
	defer cl.Close()
	held, err := cl.Holders(c.Context)
	if err != nil {
		return results, append(errs, err)
	}
	store := volumes.Open(state.Dir(cfg.StateDir).Volumes(), host.Linux{}, nil)
	for _, h := range held {
		if h.Holder.Node != cfg.Cluster.Node || shimAlive(h.Holder.PID) {
			continue
		}
		id, err := volumes.NewID(h.Holder.Namespace, h.Holder.Tenant, h.Holder.Volume)
		if err != nil {
			continue // not a lock this release writes
		}
		r := gcResult{Leftover: state.Leftover{Kind: "cluster lock", Path: h.Key,
			What: fmt.Sprintf("volume %s, held for container %s by shim pid %d, which is gone", id, h.Holder.Container, h.Holder.PID)}}
		if ok, err := mountinfo.Mounted(store.MountPath(id)); err == nil && ok {
			r.Error = "still mounted here at " + store.MountPath(id) + ": run gc again once it is unmounted"
		} else if !c.Bool("dry-run") {
			if err := cl.Release(c.Context, h.Key, h.Token); err != nil {
				r.Error = err.Error()
				errs = append(errs, err)
			} else {
				r.Removed = true
			}
		}
		results = append(results, r)
	}
	return results, errs
}

// shimAlive reports whether pid is a live shim of ours.
func shimAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(b), "containerd-shim-persist")
}

// clusterAttachedTo is what volumes ls shows in ATTACHED TO: for a volume of
// a cluster backend, the container and the node that hold it, from etcd,
// where a holder on another node is known. Without etcd, it says so once
// and shows what this host knows.
func clusterAttachedTo(c *cli.Context, cfg *config.Config) func(i volumes.Info, local string) string {
	holders, err := clusterHolders(c.Context, cfg)
	if err != nil {
		fmt.Fprintf(errWriter(c), "cluster holders not shown: %v\n", err)
	}
	return func(i volumes.Info, local string) string {
		if b, ok := cfg.Backend(i.Backend); !ok || !b.Cluster {
			return local
		}
		if h, ok := holders[holderKey(i.Namespace, i.Tenant, i.Name)]; ok {
			return h.Container + " on node " + h.Node
		}
		return local
	}
}
