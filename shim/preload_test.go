package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-persist/containerd-persist/config"
)

// bootstrapWith is what containerd hands `shim start` for a task with
// options o: the options as an extension.
func bootstrapWith(t *testing.T, o any) *bootapi.BootstrapParams {
	t.Helper()
	p := &bootapi.BootstrapParams{}
	if o != nil {
		a, err := typeurl.MarshalAnyToProto(o)
		mustT(t, err)
		p.Extensions = append(p.Extensions, &bootapi.Extension{Value: (*anypb.Any)(a)})
	}
	return p
}

// TestPreloadOptionsPassed: start passes the daemon our options, and only
// ours, and the daemon takes them out of its environment.
func TestPreloadOptionsPassed(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want *runtimeOptions // nil: nothing passed
	}{
		{"config path", &runtimeoptions.Options{ConfigPath: "/etc/p.toml"}, &runtimeOptions{configPath: "/etc/p.toml"}},
		{"config body", &runtimeoptions.Options{ConfigBody: []byte("version = 1\n")}, &runtimeOptions{configBody: "version = 1\n"}},
		{"no options", nil, nil},
		{"runc's options", &options.Options{BinaryName: "crun"}, nil},
		{"a body too big to pass", &runtimeoptions.Options{ConfigBody: []byte(strings.Repeat("#", maxPreloadEnv))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envPreload, "") // restored after the test
			os.Unsetenv(envPreload)
			passPreload(bootstrapWith(t, tt.in))
			got, ok := preloadOptions()
			if tt.want == nil {
				if ok {
					t.Fatalf("passed %+v, want nothing", got)
				}
				return
			}
			if !ok || got != *tt.want {
				t.Fatalf("passed %+v, %v; want %+v", got, ok, *tt.want)
			}
			if _, left := os.LookupEnv(envPreload); left {
				t.Errorf("%s is still set: runc would get it", envPreload)
			}
		})
	}
}

// TestPreload: the daemon's bundle's spec is read and its config loaded
// ahead of Create; the spec is taken once, by its own bundle's Create.
func TestPreload(t *testing.T) {
	bundle, dir := t.TempDir(), t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(bundle, specFile), []byte(specWithEverything), 0o600))
	path := filepath.Join(dir, "persist.toml")
	mustT(t, os.WriteFile(path, []byte("version = 1\ndefault_class = \"a\"\n[classes.a]\nmode = \"immutable\"\n"), 0o600))
	t.Setenv(envPreload, "")
	passPreload(bootstrapWith(t, &runtimeoptions.Options{ConfigPath: path}))

	cfgs := &configs{systemPath: filepath.Join(dir, "missing.toml")}
	then := make(chan *config.Config, 1)
	p := preload(bundle, cfgs, func(spec *bundleSpec, cfg *config.Config) {
		if spec.Annotations["note"] != "a<b>&c" {
			t.Errorf("then got the spec %+v, want the bundle's", spec)
		}
		then <- cfg
	})
	if _, ok := p.take(t.TempDir()); ok {
		t.Fatal("took the spec for another bundle")
	}
	spec, ok := p.take(bundle)
	if !ok || spec.Annotations["note"] != "a<b>&c" {
		t.Fatalf("take = %+v, %v; want the bundle's spec", spec, ok)
	}
	if _, ok := p.take(bundle); ok {
		t.Error("the spec was taken twice; Create changes it")
	}
	<-p.idle
	cfgs.mu.Lock()
	defer cfgs.mu.Unlock()
	cfg := cfgs.loaded[[2]string{path, ""}]
	if cfg == nil || cfg.Source != path || len(cfgs.loaded) != 1 {
		t.Errorf("configs loaded %v, want the one the options name", cfgs.loaded)
	}
	if got := <-then; got != cfg {
		t.Errorf("then got the config %+v, want the one loaded", got)
	}
}
