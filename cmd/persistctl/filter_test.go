package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/volumes"
)

func TestFilter(t *testing.T) {
	vol := func(name, ns, tenant, backend, typ, class string, held bool, labels map[string]string) volumes.Info {
		i := volumes.Info{Meta: volumes.Meta{Name: name, Namespace: ns, Tenant: tenant, Backend: backend, Type: typ, Class: class, Labels: labels}}
		if held {
			i.Holder = &volumes.Holder{Container: "c-" + name}
		}
		return i
	}
	all := []volumes.Info{
		vol("pg-data", "default", "", "sized", "loopfile", "db", true, map[string]string{"team": "db", "tier": "gold"}),
		vol("pg-wal", "default", "", "sized", "loopfile", "db", false, map[string]string{"team": "db"}),
		vol("node1", "default", "", "local", "dir", "vm", false, nil),
		vol("cache", "k8s.io", "shop", "local", "dir", "", false, map[string]string{"team": "web", "tmp": ""}),
	}
	for _, tc := range []struct {
		filters []string
		want    string
	}{
		{nil, "pg-data pg-wal node1 cache"},
		{[]string{"name=pg"}, "pg-data pg-wal"},
		{[]string{"name=^pg-d"}, "pg-data"},
		{[]string{"name=wal", "name=node"}, "pg-wal node1"}, // one value of a key
		{[]string{"backend=local"}, "node1 cache"},
		{[]string{"type=loopfile", "class=db"}, "pg-data pg-wal"},
		{[]string{"class="}, "cache"},
		{[]string{"tenant=shop"}, "cache"},
		{[]string{"tenant="}, "pg-data pg-wal node1"},
		{[]string{"namespace=k8s.io"}, "cache"},
		{[]string{"attached=true"}, "pg-data"},
		{[]string{"attached=false"}, "pg-wal node1 cache"},
		{[]string{"dangling=true"}, "pg-wal node1 cache"},
		{[]string{"dangling=1", "dangling=0"}, "pg-data pg-wal node1 cache"},
		{[]string{"dangling=true", "attached=true"}, ""}, // keys are and-ed
		{[]string{"label=team"}, "pg-data pg-wal cache"},
		{[]string{"label=team=db"}, "pg-data pg-wal"},
		{[]string{"label=team=db", "label=tier=gold"}, "pg-data"}, // every label
		{[]string{"label=tmp="}, "cache"},
		{[]string{"label!=team"}, "node1"},
		{[]string{"label!=team=db"}, "node1 cache"},
		{[]string{"label=team", "dangling=true", "backend=sized"}, "pg-wal"},
	} {
		f, err := parseFilter(tc.filters)
		if err != nil {
			t.Errorf("parseFilter(%q): %v", tc.filters, err)
			continue
		}
		var got []string
		for _, v := range f.apply(slices.Clone(all)) {
			got = append(got, v.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("--filter %q kept %q, want %q", tc.filters, got, tc.want)
		}
	}

	for _, tc := range []struct{ filter, says string }{
		{"nope=1", "KEY one of attached, backend, class, dangling, label, label!, name, namespace, tenant, type"},
		{"name", "write KEY=VALUE"},
		{"attached=maybe", `"maybe" is not true or false`},
		{"name=(", "not a regular expression"},
		{"label=", "name a label KEY"},
	} {
		_, err := parseFilter([]string{tc.filter})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("--filter %q: %v, want InvalidArgument saying %q", tc.filter, err, tc.says)
		}
	}
}
