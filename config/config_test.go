package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestParseDesign(t *testing.T) {
	data, err := os.ReadFile("testdata/design.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "testdata/design.toml")
	if err != nil {
		t.Fatalf("the example in DESIGN.md must parse: %v", err)
	}
	if c.Source != "testdata/design.toml" || c.DefaultClass != "web" || c.StateDir != "/var/lib/containerd-persist" {
		t.Fatalf("top level: %+v", c)
	}
	if got := c.ClassNames(); !reflect.DeepEqual(got, []string{"db", "vm", "web"}) {
		t.Fatalf("ClassNames = %v", got)
	}
	sized, ok := c.Backend("sized")
	if !ok || sized.Name != "sized" || sized.Type != BackendLoopfile || sized.DefaultSize != 1<<30 || sized.Path != "/srv/persist" {
		t.Fatalf("backends.sized = %+v", sized)
	}
	web, _ := c.Class("web")
	wantScratch := []Scratch{{"/tmp", MediumMemory, 64 << 20}, {"/var/tmp", MediumDisk, 1 << 30}}
	if web.Name != "web" || web.Mode != ModeImmutable || web.Selectable || !reflect.DeepEqual(web.Scratch, wantScratch) {
		t.Fatalf("classes.web = %+v", web)
	}
	vm, _ := c.Class("vm")
	if vm.Mode != ModeMachine || !vm.Selectable || vm.Backend != "local" || vm.VolumeName != "{name}" || vm.OnImageChange != ImageKeep || vm.Size != 0 {
		t.Fatalf("classes.vm = %+v", vm)
	}
	db, _ := c.Class("db")
	wantVolumes := []Volume{{Path: "/var/lib/postgresql", Backend: "sized", Name: "{name}-data", Size: 10 << 30}}
	if !reflect.DeepEqual(db.Volumes, wantVolumes) {
		t.Fatalf("classes.db.volumes = %+v", db.Volumes)
	}
	if _, ok := c.Class("nope"); ok {
		t.Fatal("Class(nope) found a class")
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.Source != "embedded default" || c.Version != 1 || c.DefaultClass != "web" {
		t.Fatalf("Default() = %+v", c)
	}
	web, ok := c.Class("web")
	if !ok || web.Mode != ModeImmutable || !reflect.DeepEqual(web.Scratch, []Scratch{{"/tmp", MediumMemory, 64 << 20}}) {
		t.Fatalf("classes.web = %+v", web)
	}
	vm, ok := c.Class("vm")
	if !ok || vm.Mode != ModeMachine || !vm.Selectable || vm.Backend != "local" {
		t.Fatalf("classes.vm = %+v", vm)
	}
	if b, _ := c.Backend("local"); b == nil || b.Type != BackendDir || !strings.HasPrefix(b.Path, c.StateDir+"/") {
		t.Fatalf("backends.local = %+v, want a dir backend under %s", b, c.StateDir)
	}
	// Each call is a fresh value, so one caller cannot change another's.
	c.Classes["web"].Scratch[0].Size = 1
	if Default().Classes["web"].Scratch[0].Size != 64<<20 {
		t.Fatal("Default() returned a shared value")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(`
version = 1
default_class = "m"
[backends.big]
type = "loopfile"
path = "/srv/big"
[classes.m]
mode = "machine"
backend = "big"
[[classes.m.scratch]]
path = "/tmp"
size = "1m"
[[classes.m.volumes]]
path = "/data"
backend = "big"
name = "{name}-data"
`), "t")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Classes["m"]
	switch {
	case c.StateDir != "/var/lib/containerd-persist":
		t.Errorf("state_dir = %q", c.StateDir)
	case c.Backends["big"].DefaultSize != 1<<30:
		t.Errorf("default_size = %v", c.Backends["big"].DefaultSize)
	case m.VolumeName != "{name}" || m.OnImageChange != ImageKeep || m.Size != 1<<30:
		t.Errorf("root volume defaults: %+v", m)
	case m.Scratch[0].Medium != MediumMemory:
		t.Errorf("scratch medium = %q", m.Scratch[0].Medium)
	case m.Volumes[0].Size != 1<<30:
		t.Errorf("volume size = %v", m.Volumes[0].Size)
	}
}

// A parsed config marshals to TOML that parses to the same config, so
// persistctl can print the config in effect.
func TestMarshalRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/design.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "a")
	if err != nil {
		t.Fatal(err)
	}
	out, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "a")
	if err != nil {
		t.Fatalf("re-parse marshaled config: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(c, back) {
		t.Fatalf("round trip changed the config:\n%s", out)
	}
}

// file must take exactly the keys Config has, or a key would be accepted
// and dropped, or documented and refused.
func TestFileMirrorsConfig(t *testing.T) {
	for _, pair := range [][2]any{
		{Config{}, file{}}, {Backend{}, fileBackend{}}, {Class{}, fileClass{}},
		{Scratch{}, fileScratch{}}, {Volume{}, fileVolume{}},
	} {
		want, got := tomlKeys(reflect.TypeOf(pair[0])), tomlKeys(reflect.TypeOf(pair[1]))
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%T keys %v, %T keys %v", pair[0], want, pair[1], got)
		}
	}
}

func tomlKeys(typ reflect.Type) []string {
	var keys []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, defaultClass string) string {
		p := filepath.Join(dir, name)
		body := strings.Replace(string(DefaultTOML), `default_class = "web"`, `default_class = "`+defaultClass+`"`, 1)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	runtimeFile := write("runtime.toml", "vm")
	systemFile := write("persist.toml", "web")
	missing := filepath.Join(dir, "missing.toml")
	body := strings.Replace(string(DefaultTOML), `default_class = "web"`, `default_class = "vm"`, 1)

	for _, tc := range []struct {
		name                    string
		runtimePath, body, sys  string
		wantSource, wantDefault string
	}{
		{"body wins", runtimeFile, body, systemFile, "runtime options", "vm"},
		{"runtime path before system", runtimeFile, "", systemFile, runtimeFile, "vm"},
		{"system file", "", "", systemFile, systemFile, "web"},
		{"missing system file", "", "", missing, "embedded default", "web"},
		{"no paths", "", "", "", "embedded default", "web"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.runtimePath, tc.body, tc.sys)
			if err != nil {
				t.Fatal(err)
			}
			if c.Source != tc.wantSource || c.DefaultClass != tc.wantDefault {
				t.Fatalf("Load: source %q default_class %q, want %q %q", c.Source, c.DefaultClass, tc.wantSource, tc.wantDefault)
			}
		})
	}

	t.Run("missing runtime path", func(t *testing.T) {
		_, err := Load(missing, "", systemFile)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
			t.Fatalf("Load = %v, want a not-exist error naming %s", err, missing)
		}
	})
	t.Run("unreadable system path", func(t *testing.T) {
		_, err := Load("", "", dir) // a directory cannot be read as a file
		if err == nil || errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("Load = %v, want a read error naming %s", err, dir)
		}
	})
	t.Run("invalid system file", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.toml")
		if err := os.WriteFile(bad, []byte("version = 2\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load("", "", bad)
		var cerr *Error
		if !errors.As(err, &cerr) || cerr.Source != bad || !errors.Is(err, ErrInvalid) {
			t.Fatalf("Load = %v, want an *Error from %s", err, bad)
		}
	})
}
