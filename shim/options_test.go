package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
)

// mustAny encodes v as a create request carries it.
func mustAny(t *testing.T, v any) typeurl.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSplitOptions(t *testing.T) {
	runc := &options.Options{BinaryName: "crun", SystemdCgroup: true, Root: "/run/crun"}
	tests := []struct {
		name     string
		in       func(t *testing.T) typeurl.Any
		wantRunc proto.Message // nil: none passed on
		wantPath string
		wantBody string
		wantErr  []string
	}{
		{name: "nil", in: func(*testing.T) typeurl.Any { return nil }},
		{name: "empty any", in: func(*testing.T) typeurl.Any { return &anypb.Any{} }},
		{name: "nil request field", in: func(*testing.T) typeurl.Any { return (*anypb.Any)(nil) }},
		{name: "runc options passed through", in: func(t *testing.T) typeurl.Any { return mustAny(t, runc) }, wantRunc: runc},
		{name: "runc defaults passed through", in: func(t *testing.T) typeurl.Any { return mustAny(t, &options.Options{}) }, wantRunc: &options.Options{}},
		{
			name: "config path",
			in: func(t *testing.T) typeurl.Any {
				return mustAny(t, &runtimeoptions.Options{ConfigPath: "/etc/persist/web.toml"})
			},
			wantPath: "/etc/persist/web.toml",
		},
		{
			name: "config body",
			in: func(t *testing.T) typeurl.Any {
				return mustAny(t, &runtimeoptions.Options{ConfigBody: []byte("version = 1\n")})
			},
			wantBody: "version = 1\n",
		},
		{
			name:    "other type",
			in:      func(t *testing.T) typeurl.Any { return mustAny(t, &emptypb.Empty{}) },
			wantErr: []string{"not supported", "--runtime-config-path", "ConfigPath"},
		},
		{
			name: "unknown type URL",
			in: func(*testing.T) typeurl.Any {
				return &anypb.Any{TypeUrl: "example.com/persist.Nope", Value: []byte{8, 1}}
			},
			wantErr: []string{"example.com/persist.Nope"},
		},
		{
			name: "garbage value",
			in: func(t *testing.T) typeurl.Any {
				return &anypb.Any{TypeUrl: mustAny(t, runc).GetTypeUrl(), Value: []byte{0xff, 0xff, 0xff}}
			},
			wantErr: []string{"decode runtime options"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitOptions(tt.in(t))
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("splitOptions = %+v, want an error", got)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.configPath != tt.wantPath || got.configBody != tt.wantBody {
				t.Errorf("config = %q, %q; want %q, %q", got.configPath, got.configBody, tt.wantPath, tt.wantBody)
			}
			if tt.wantRunc == nil {
				if got.runc != nil {
					t.Errorf("runc options = %v, want none", got.runc)
				}
				return
			}
			// runc's service unmarshals what it gets as its own type.
			if got.runc == nil {
				t.Fatal("runc options dropped")
			}
			v, err := typeurl.UnmarshalAny(got.runc)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(v.(proto.Message), tt.wantRunc) {
				t.Errorf("runc options = %v, want %v", v, tt.wantRunc)
			}
		})
	}
}

func TestConfigsLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "persist.toml")
	body := "version = 1\ndefault_class = \"a\"\n[classes.a]\nmode = \"immutable\"\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &configs{systemPath: filepath.Join(dir, "missing.toml")}

	def, err := c.load(runtimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if def.Source != "embedded default" {
		t.Errorf("no options, no system config: source %q, want the embedded default", def.Source)
	}
	fromFile, err := c.load(runtimeOptions{configPath: path})
	if err != nil || fromFile.Source != path || fromFile.DefaultClass != "a" {
		t.Fatalf("config path: %+v, %v", fromFile, err)
	}
	fromBody, err := c.load(runtimeOptions{configBody: body})
	if err != nil || fromBody.Source != "runtime options" {
		t.Fatalf("config body: %+v, %v", fromBody, err)
	}
	// Each config is parsed once per shim.
	if again, _ := c.load(runtimeOptions{configPath: path}); again != fromFile {
		t.Error("config path parsed again")
	}
	if again, _ := c.load(runtimeOptions{}); again != def {
		t.Error("default parsed again")
	}
	if _, err := c.load(runtimeOptions{configBody: "version = 2\n"}); err == nil {
		t.Error("bad config body accepted")
	}
	if _, err := c.load(runtimeOptions{configPath: filepath.Join(dir, "nope.toml")}); err == nil {
		t.Error("missing config path accepted")
	}
}
