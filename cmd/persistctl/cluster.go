package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
			Name:   "hold",
			Hidden: true, // run by the shim, one per cluster volume it attaches
			Usage:  "hold a cluster volume's etcd lock for the shim, and stop its container when the lease or the shim is lost",
			Action: clusterHold,
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

// clusterHold is run by the shim beside each cluster volume it attaches,
// with a pipe from the shim as stdin and one to it as stdout (package
// cluster/hold): it takes the volume's lock in etcd and keeps its lease
// alive, so that the shim never links the etcd client. It stops the
// container (its init is killed) and syncs and unmounts the volume when the
// lease cannot be renewed in time, or when the shim ends without a release
// (it died, maybe with containerd, while the container lives on): the lease
// then ends without them, and another node may take the volume, which must
// not find it still written here.
func clusterHold(c *cli.Context) error {
	signal.Ignore(unix.SIGPIPE) // a shim that is gone reads nothing; its pipe must not cut a fence short
	err := cluster.Hold(os.Stdin, os.Stdout, func(req hold.Request) cluster.Stop { return holdStop(c, req) })
	if err != nil {
		// Told already: to the shim, which returns or logs it, or by the
		// fence's own line below.
		return cli.Exit("", 1)
	}
	return nil
}

// holdStop is how a holder stops the container of req and unmounts its
// volume: the container's init is watched for from now on.
func holdStop(c *cli.Context, req hold.Request) cluster.Stop {
	initPID := filepath.Join(req.Bundle, "init.pid")
	// A pidfd, once the container's init is known, kills that process and
	// no other that reuses its PID later.
	pidfd := make(chan int, 1)
	stopWatch := make(chan struct{})
	go func() {
		for {
			if fd, err := openInit(initPID); err == nil {
				pidfd <- fd
				return
			}
			select {
			case <-stopWatch:
				pidfd <- -1
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func(why error, deadline time.Time) error {
		close(stopWatch)
		fd := <-pidfd
		if fd < 0 {
			fd, _ = openInit(initPID)
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
		fmt.Fprintf(c.App.ErrWriter, "persistctl cluster hold: fence: %v: killed the container of %s and unmounted %s in %s, %s before the lease's deadline; errors: %v\n",
			why, req.Bundle, req.Mount, time.Since(start).Round(time.Millisecond), time.Until(deadline).Round(time.Millisecond), err)
		return err
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
