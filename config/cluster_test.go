package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// clusterHead is a valid config with one cluster backend; the [cluster]
// table of a case follows it, from line 11.
const clusterHead = `version = 1
default_class = "db"
[backends.shared]
type = "loopfile"
path = "/srv/shared"
cluster = true
[classes.db]
mode = "machine"
backend = "shared"
name = "{name}"
`

func TestParseCluster(t *testing.T) {
	c, err := Parse([]byte(clusterHead+`[cluster]
etcd = ["http://127.0.0.1:2379", "https://etcd-2:2379"]
ca_file = "/etc/etcd/ca.pem"
node = "node-a"
lease_ttl = "5s"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	want := &Cluster{Etcd: []string{"http://127.0.0.1:2379", "https://etcd-2:2379"}, CAFile: "/etc/etcd/ca.pem", Node: "node-a", LeaseTTL: Duration(5 * time.Second)}
	if !reflect.DeepEqual(c.Cluster, want) {
		t.Errorf("cluster %+v, want %+v", c.Cluster, want)
	}
	if !c.Backends["shared"].Cluster {
		t.Error("backend shared is not a cluster backend")
	}
	// It writes back to TOML that parses to the same config.
	b, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b, "again")
	if err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	if !reflect.DeepEqual(again.Cluster, c.Cluster) {
		t.Errorf("round trip: %+v, want %+v", again.Cluster, c.Cluster)
	}
}

func TestParseClusterDefaults(t *testing.T) {
	c, err := Parse([]byte(clusterHead+"[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Cluster.Node != host || c.Cluster.TTL() != 15*time.Second {
		t.Errorf("node %q lease_ttl %s, want the hostname %q and 15s", c.Cluster.Node, c.Cluster.TTL(), host)
	}
}

func TestDefaultHasNoCluster(t *testing.T) {
	c := Default()
	if c.Cluster != nil {
		t.Errorf("the embedded default has a cluster: %+v", c.Cluster)
	}
	for _, b := range c.Backends {
		if b.Cluster {
			t.Errorf("the embedded default's backend %s is a cluster backend", b.Name)
		}
	}
}

func TestParseClusterBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		key  string
		msg  string
	}{
		{"no cluster table", clusterHead, 6, "backends.shared.cluster", `backend "shared" is a cluster backend but there is no [cluster] table`},
		{"dir backend", strings.Replace(clusterHead, `type = "loopfile"`, `type = "dir"`, 1) + "[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n",
			6, "backends.shared.cluster", "only loopfile backends can be cluster backends"},
		{"no endpoints", clusterHead + "[cluster]\nnode = \"a\"\n", 11, "cluster.etcd", "etcd is required"},
		{"bad endpoint", clusterHead + "[cluster]\netcd = [\"127.0.0.1:2379\"]\n", 12, "cluster.etcd", `"127.0.0.1:2379" is not an etcd endpoint: write it as http://HOST:PORT`},
		{"endpoint without port", clusterHead + "[cluster]\netcd = [\"http://etcd\"]\n", 12, "cluster.etcd", "is not an etcd endpoint"},
		{"bad ttl", clusterHead + "[cluster]\netcd = [\"http://e:2379\"]\nlease_ttl = \"soon\"\n", 13, "cluster.lease_ttl", `"soon" is not a duration`},
		{"short ttl", clusterHead + "[cluster]\netcd = [\"http://e:2379\"]\nlease_ttl = \"1s\"\n", 13, "cluster.lease_ttl", "lease_ttl 1s is out of range: use 3s to 1h0m0s"},
		{"fractional ttl", clusterHead + "[cluster]\netcd = [\"http://e:2379\"]\nlease_ttl = \"4500ms\"\n", 13, "cluster.lease_ttl", "is not whole seconds"},
		{"cert without key", clusterHead + "[cluster]\netcd = [\"https://e:2379\"]\ncert_file = \"/etc/etcd/c.pem\"\n", 13, "cluster.cert_file", "cert_file and key_file go together"},
		{"relative ca", clusterHead + "[cluster]\netcd = [\"https://e:2379\"]\nca_file = \"ca.pem\"\n", 13, "cluster.ca_file", "is not a clean absolute path"},
		{"bad node", clusterHead + "[cluster]\netcd = [\"http://e:2379\"]\nnode = \"a/b\"\n", 13, "cluster.node", `node name "a/b" is not allowed`},
		{"unknown key", clusterHead + "[cluster]\netcd = [\"http://e:2379\"]\nttl = \"5s\"\n", 13, "cluster.ttl", "unknown key"},
		{"cluster not a bool", strings.Replace(clusterHead, "cluster = true", "cluster = \"yes\"", 1), 6, "backends.shared.cluster", "true or false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), "test.toml")
			var bad *Error
			if !errors.As(err, &bad) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want a config error", err)
			}
			for _, p := range bad.Problems {
				if p.Key == tc.key && p.Line == tc.line && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("no problem at line %d key %s saying %q in %v", tc.line, tc.key, tc.msg, bad.Problems)
		})
	}
}

func TestClusterFileMirrorsConfig(t *testing.T) {
	want, got := tomlKeys(reflect.TypeOf(Cluster{})), tomlKeys(reflect.TypeOf(fileCluster{}))
	if !reflect.DeepEqual(want, got) {
		t.Errorf("Cluster keys %v, fileCluster keys %v", want, got)
	}
}
