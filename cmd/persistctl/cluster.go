package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
			Name:   "watch",
			Hidden: true, // run by the shim, one per cluster volume it attaches
			Usage:  "stop a container and unmount its cluster volume when the shim that holds it dies",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "bundle", Required: true},
				&cli.StringFlag{Name: "mount", Required: true},
			},
			Action: clusterWatch,
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

// clusterWatch is run by the shim beside each cluster volume it attaches,
// with its stdin a pipe from the shim. "release" on it ends the watch. If it
// ends without (the shim died, maybe with containerd, while the container
// lives on), the container's init is killed, and the volume synced and
// unmounted: the shim's lease then ends without them, and another node may
// take the volume, which must not find it still written here.
func clusterWatch(c *cli.Context) error {
	bundle, mount := c.String("bundle"), c.String("mount")
	initPID := filepath.Join(bundle, "init.pid")
	// A pidfd, once the container's init is known, kills that process and
	// no other that reuses its PID later.
	pidfd := make(chan int, 1)
	stop := make(chan struct{})
	go func() {
		for {
			if fd, err := openInit(initPID); err == nil {
				pidfd <- fd
				return
			}
			select {
			case <-stop:
				pidfd <- -1
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "release" {
			return nil
		}
	}
	close(stop)
	fd := <-pidfd
	if fd < 0 {
		fd, _ = openInit(initPID)
	}
	var errs []error
	if fd >= 0 {
		if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill the container's init: %w", err))
		}
		// The init has exited when its pidfd turns readable.
		unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 5000)
	}
	if err := volumes.Syncfs(mount); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("sync %s: %w", mount, err))
	}
	if err := (host.Linux{}).Unmount(mount); err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(c.App.ErrWriter, "persistctl cluster watch: the shim of %s died: stopped the container and unmounted %s: %v\n", bundle, mount, errors.Join(errs...))
	return errors.Join(errs...)
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
