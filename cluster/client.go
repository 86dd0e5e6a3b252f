package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"path"
	"time"

	"github.com/containerd/errdefs"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
)

// Prefix is where the keys of containerd-persist live in etcd.
const Prefix = "/containerd-persist/"

// ErrUnreachable is returned when etcd does not answer in time.
var ErrUnreachable = hold.ErrUnreachable

// Options say which etcd to use and who this node is.
type Options struct {
	Endpoints                 []string
	CAFile, CertFile, KeyFile string
	Node                      string
	TTL                       time.Duration // of leases; whole seconds
	Prefix                    string        // Prefix when empty
}

// OptionsOf returns the options of a config's [cluster] table.
func OptionsOf(c *config.Cluster) Options {
	return Options{Endpoints: c.Etcd, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile, Node: c.Node, TTL: c.TTL()}
}

// ConnectTimeout bounds each call that may wait for etcd before a volume is
// locked: min(5 s, TTL/3).
func (o Options) ConnectTimeout() time.Duration { return min(5*time.Second, o.TTL/3) }

func (o Options) prefix() string {
	if o.Prefix == "" {
		return Prefix
	}
	return o.Prefix
}

// Client is a connection to etcd.
type Client struct {
	etcd *clientv3.Client
	opts Options
}

// Dial makes a client of etcd. It does not wait for a connection: the first
// call does, within ConnectTimeout.
func Dial(o Options) (*Client, error) {
	var tlsConfig *tls.Config
	if o.CAFile != "" || o.CertFile != "" {
		info := transport.TLSInfo{CertFile: o.CertFile, KeyFile: o.KeyFile, TrustedCAFile: o.CAFile}
		var err error
		if tlsConfig, err = info.ClientConfig(); err != nil {
			return nil, fmt.Errorf("etcd TLS files of [cluster]: %w", err)
		}
	}
	etcd, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		TLS:         tlsConfig,
		DialTimeout: o.ConnectTimeout(),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: etcd client for %v: %w", errdefs.ErrInvalidArgument, o.Endpoints, err)
	}
	return &Client{etcd: etcd, opts: o}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.etcd.Close() }

// Node is this node's name.
func (c *Client) Node() string { return c.opts.Node }

// Key is the lock key of the volume (namespace, tenant, name).
func (c *Client) Key(namespace, tenant, name string) string {
	if tenant != "" {
		return path.Join(c.opts.prefix(), "volumes", namespace, "@"+tenant, name)
	}
	return path.Join(c.opts.prefix(), "volumes", namespace, name)
}

// call runs f with a context bounded by ConnectTimeout, and says plainly
// when etcd did not answer in time.
func (c *Client) call(ctx context.Context, what string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout())
	defer cancel()
	err := f(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w: %w: %s: no answer from %v within %s: check that etcd runs and that [cluster] etcd names it; a cluster volume is never attached without its lock",
			errdefs.ErrUnavailable, ErrUnreachable, what, c.opts.Endpoints, c.opts.ConnectTimeout())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
