package shim

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/config"
)

const classesTOML = `
version = 1
state_dir = "/var/lib/containerd-persist"
default_class = "web"

[backends.local]
type = "dir"
path = "/var/lib/containerd-persist/volumes"

[classes.web]
mode = "immutable"

[classes.vm]
mode = "machine"
backend = "local"
selectable = true

[classes.locked]
mode = "immutable"
`

func TestResolveClass(t *testing.T) {
	cfg, err := config.Parse([]byte(classesTOML), "/etc/containerd/persist.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		annotations map[string]string
		want        string
		wantErr     func(error) bool
		wantMsg     []string
	}{
		{name: "no annotations", want: "web"},
		{name: "other annotations", annotations: map[string]string{"io.kubernetes.cri.container-name": "app"}, want: "web"},
		{name: "name only", annotations: map[string]string{AnnotationName: "db1"}, want: "web"},
		{name: "selectable class", annotations: map[string]string{AnnotationClass: "vm"}, want: "vm"},
		{
			name:        "unknown class",
			annotations: map[string]string{AnnotationClass: "nope"},
			wantErr:     errdefs.IsNotFound,
			wantMsg:     []string{`"nope"`, "/etc/containerd/persist.toml", "locked, vm, web", AnnotationClass},
		},
		{
			name:        "empty class",
			annotations: map[string]string{AnnotationClass: ""},
			wantErr:     errdefs.IsNotFound,
			wantMsg:     []string{`""`, "locked, vm, web"},
		},
		{
			name:        "class not selectable",
			annotations: map[string]string{AnnotationClass: "locked"},
			wantErr:     errdefs.IsPermissionDenied,
			wantMsg:     []string{`"locked"`, "selectable = true", "/etc/containerd/persist.toml"},
		},
		{
			// Naming the default class gives what no annotation gives.
			name:        "default class named though not selectable",
			annotations: map[string]string{AnnotationClass: "web"},
			want:        "web",
		},
		{
			name:        "a 100 KB class name is cut in the error",
			annotations: map[string]string{AnnotationClass: strings.Repeat("x", 100000)},
			wantErr:     errdefs.IsNotFound,
			wantMsg:     []string{"100000 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveClass(cfg, tt.annotations)
			if tt.wantErr != nil {
				if !tt.wantErr(err) {
					t.Fatalf("resolveClass = %v, %v; want an error of the right kind", got, err)
				}
				for _, s := range tt.wantMsg {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is not one line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tt.want {
				t.Errorf("resolveClass = %s, want %s", got.Name, tt.want)
			}
		})
	}
}

func TestResolveClassEmbeddedDefault(t *testing.T) {
	cfg := config.Default()
	if c, err := resolveClass(cfg, nil); err != nil || c.Name != "web" {
		t.Errorf("default = %v, %v; want web", c, err)
	}
	if c, err := resolveClass(cfg, map[string]string{AnnotationClass: "vm"}); err != nil || c.Mode != config.ModeMachine {
		t.Errorf("vm = %v, %v; want the machine class", c, err)
	}
}

func TestTemplateVars(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		want        map[string]string
	}{
		{
			name: "plain container",
			want: map[string]string{
				"name": "c1", "namespace": "default", "container": "c1",
				"k8s.namespace": "", "k8s.pod": "", "k8s.container": "",
			},
		},
		{
			name:        "name annotation",
			annotations: map[string]string{AnnotationName: "pg-0"},
			want: map[string]string{
				"name": "pg-0", "namespace": "default", "container": "c1",
				"k8s.namespace": "", "k8s.pod": "", "k8s.container": "",
			},
		},
		{
			name:        "empty name annotation",
			annotations: map[string]string{AnnotationName: ""},
			want: map[string]string{
				"name": "c1", "namespace": "default", "container": "c1",
				"k8s.namespace": "", "k8s.pod": "", "k8s.container": "",
			},
		},
		{
			name: "kubernetes pod",
			annotations: map[string]string{
				"io.kubernetes.cri.sandbox-namespace": "shop",
				"io.kubernetes.cri.sandbox-name":      "db-0",
				"io.kubernetes.cri.container-name":    "postgres",
				"io.kubernetes.cri.container-type":    "container",
			},
			want: map[string]string{
				"name": "db-0_postgres", "namespace": "default", "container": "c1",
				"k8s.namespace": "shop", "k8s.pod": "db-0", "k8s.container": "postgres",
			},
		},
		{
			name:        "nerdctl --name",
			annotations: map[string]string{"nerdctl/name": "pg1"},
			want: map[string]string{
				"name": "pg1", "namespace": "default", "container": "c1",
				"k8s.namespace": "", "k8s.pod": "", "k8s.container": "",
			},
		},
		{
			name:        "name annotation over nerdctl --name",
			annotations: map[string]string{"nerdctl/name": "pg1", AnnotationName: "pg-data"},
			want: map[string]string{
				"name": "pg-data", "namespace": "default", "container": "c1",
				"k8s.namespace": "", "k8s.pod": "", "k8s.container": "",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := templateVars(tt.annotations, "default", "c1")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("templateVars =\n %v\nwant\n %v", got, tt.want)
			}
			// Every documented placeholder has a value (maybe empty).
			for _, v := range config.TemplateVars {
				if _, ok := got[v]; !ok {
					t.Errorf("no value for {%s}", v)
				}
			}
		})
	}
	// With the k8s values, a pod's template expands.
	vars := templateVars(map[string]string{
		"io.kubernetes.cri.sandbox-namespace": "shop",
		"io.kubernetes.cri.sandbox-name":      "db-0",
		"io.kubernetes.cri.container-name":    "postgres",
	}, "k8s.io", "3f2a")
	if got, err := config.Expand("{k8s.namespace}-{k8s.pod}-{k8s.container}", vars); err != nil || got != "shop-db-0-postgres" {
		t.Errorf("Expand = %q, %v", got, err)
	}
}
