package config

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"time"
)

const (
	defaultLeaseTTL = 15 * time.Second
	// minLeaseTTL keeps the lease above etcd's own minimum (1.5 election
	// ticks' worth, 1.5 s with etcd's defaults, which it rounds TTLs up
	// to) and leaves the holder a second of its last third to fence itself
	// (see package cluster).
	minLeaseTTL = 3 * time.Second
	maxLeaseTTL = time.Hour
)

// Cluster is the [cluster] table: the etcd cluster that holds the locks of
// cluster backends' volumes, and this host's name in it.
type Cluster struct {
	Etcd     []string `toml:"etcd"`
	CAFile   string   `toml:"ca_file,omitempty"`
	CertFile string   `toml:"cert_file,omitempty"`
	KeyFile  string   `toml:"key_file,omitempty"`
	// Node names this host in the holders of locks; the hostname when
	// unset.
	Node string `toml:"node,omitempty"`
	// LeaseTTL is how long a lock outlives its holder's last renewal: a
	// dead node's volumes can be taken after it. Whole seconds.
	LeaseTTL Duration `toml:"lease_ttl,omitempty"`
}

// fileCluster mirrors Cluster as it is written.
type fileCluster struct {
	Etcd     []string `toml:"etcd"`
	CAFile   string   `toml:"ca_file"`
	CertFile string   `toml:"cert_file"`
	KeyFile  string   `toml:"key_file"`
	Node     string   `toml:"node"`
	LeaseTTL string   `toml:"lease_ttl"`
}

// Duration is a time.Duration written as text, like "15s".
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// config converts the [cluster] table, reporting a bad lease_ttl to ch.
func (f *fileCluster) config(ch *checker) *Cluster {
	if f == nil {
		return nil
	}
	c := &Cluster{Etcd: f.Etcd, CAFile: f.CAFile, CertFile: f.CertFile, KeyFile: f.KeyFile, Node: f.Node}
	if f.LeaseTTL != "" {
		d, err := time.ParseDuration(f.LeaseTTL)
		if err != nil {
			ch.add("cluster.lease_ttl", "%q is not a duration: write it like \"15s\"", f.LeaseTTL)
		}
		c.LeaseTTL = Duration(d)
	}
	return c
}

// checkCluster checks and defaults the [cluster] table.
func (c *Config) checkCluster(ch *checker) {
	cl := c.Cluster
	if cl == nil {
		return
	}
	if len(cl.Etcd) == 0 {
		ch.add("cluster.etcd", "etcd is required: list the etcd v3 endpoints, like etcd = [\"http://10.0.0.1:2379\"]")
	}
	for _, e := range cl.Etcd {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
			ch.add("cluster.etcd", "%q is not an etcd endpoint: write it as http://HOST:PORT or https://HOST:PORT", e)
		}
	}
	for _, f := range []struct{ key, path string }{{"ca_file", cl.CAFile}, {"cert_file", cl.CertFile}, {"key_file", cl.KeyFile}} {
		if f.path != "" && (!path.IsAbs(f.path) || path.Clean(f.path) != f.path) {
			ch.add("cluster."+f.key, "%q is not a clean absolute path: name the PEM file like /etc/containerd/etcd/%s.pem", f.path, f.key[:len(f.key)-5])
		}
	}
	if (cl.CertFile == "") != (cl.KeyFile == "") {
		ch.add("cluster.cert_file", "cert_file and key_file go together: set both for a client certificate, or neither")
	}
	if cl.Node == "" {
		cl.Node, _ = os.Hostname()
	}
	if !validNode(cl.Node) {
		ch.add("cluster.node", "node name %q is not allowed: use 1 to 253 of a-z, A-Z, 0-9, ., _ and -; it names this host in the cluster's locks", cl.Node)
	}
	ttl := time.Duration(cl.LeaseTTL)
	switch {
	case ch.bad["cluster.lease_ttl"]:
	case ttl == 0:
		cl.LeaseTTL = Duration(defaultLeaseTTL)
	case ttl < minLeaseTTL || ttl > maxLeaseTTL:
		ch.add("cluster.lease_ttl", "lease_ttl %s is out of range: use %s to %s (etcd counts leases in whole seconds)", ttl, minLeaseTTL, maxLeaseTTL)
	case ttl%time.Second != 0:
		ch.add("cluster.lease_ttl", "lease_ttl %s is not whole seconds, which is how etcd counts leases: like \"15s\"", ttl)
	}
}

// checkClusterBackend checks a backend's cluster flag.
func (c *Config) checkClusterBackend(ch *checker, key string, b *Backend) {
	if !b.Cluster {
		return
	}
	if b.Type != BackendLoopfile {
		ch.add(key+".cluster", "only loopfile backends can be cluster backends: a volume that follows a workload across hosts is one ext4 image on the shared filesystem; set type = \"loopfile\" or remove cluster")
	}
	if c.Cluster == nil {
		ch.add(key+".cluster", "backend %q is a cluster backend but there is no [cluster] table: add [cluster] with etcd = [\"http://HOST:2379\"], or remove cluster", b.Name)
	}
}

// validNode reports whether s may name a node: a hostname's characters.
func validNode(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// TTL is the lease TTL as a time.Duration.
func (c *Cluster) TTL() time.Duration { return time.Duration(c.LeaseTTL) }

// String names the cluster in messages: its first endpoint and this node.
func (c *Cluster) String() string {
	first := ""
	if len(c.Etcd) > 0 {
		first = c.Etcd[0]
	}
	return fmt.Sprintf("etcd %s as node %s", first, c.Node)
}
