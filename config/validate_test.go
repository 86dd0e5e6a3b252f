package config

import (
	"errors"
	"strings"
	"testing"
)

// head is a valid start that the bad configs below build on; it is 8 lines,
// so a case's own lines start at line 9.
const head = `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/srv/dir"
[backends.sized]
type = "loopfile"
path = "/srv/sized"
`

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		key  string
		msg  string
	}{
		{"unknown key", head + `[classes.web]
mode = "immutable"
sise = "1g"
`, 11, "classes.web.sise", "unknown key; see persistctl config default"},
		{"unknown key in second scratch", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "1m"
[[classes.web.scratch]]
path = "/var/tmp"
sise = "1m"
`, 16, "classes.web.scratch[1].sise", "unknown key"},
		{"unknown table", head + `[classes.web]
mode = "immutable"
[volumes.x]
`, 11, "volumes.x", "unknown key"},
		{"bad mode", head + `[classes.web]
mode = "vm"
`, 10, "classes.web.mode", `mode "vm" is not a mode: use "immutable" or "machine"`},
		{"missing mode", head + `[classes.web]
selectable = true
`, 9, "classes.web.mode", "mode is required"},
		{"bad size", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "12XB"
`, 13, "classes.web.scratch[0].size", `"12XB" is not a size: use a number with KiB`},
		{"zero size", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "0"
`, 13, "classes.web.scratch[0].size", "size must be greater than zero"},
		{"integer zero size", head + `[classes.web]
mode = "immutable"
scratch = [{ path = "/tmp", size = 0 }]
`, 11, "classes.web.scratch[0].size", "size must be greater than zero"},
		{"missing scratch size", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
`, 11, "classes.web.scratch[0].size", "size is required"},
		{"relative scratch path", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "tmp"
size = "1m"
`, 12, "classes.web.scratch[0].path", `"tmp" is not absolute`},
		{"scratch path with a colon", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/a:b"
size = "1m"
`, 12, "classes.web.scratch[0].path", "comma or colon"},
		{"unclean scratch path", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp/"
size = "1m"
`, 12, "classes.web.scratch[0].path", `write it as "/tmp"`},
		{"root scratch path", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/"
size = "1m"
`, 12, "classes.web.scratch[0].path", `"/" cannot be used`},
		{"bad medium", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "ram"
size = "1m"
`, 13, "classes.web.scratch[0].medium", `medium "ram" is not a medium`},
		{"overlapping paths", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/var/lib"
size = "1m"
[[classes.web.volumes]]
path = "/var/lib/pg"
backend = "local"
name = "{name}"
`, 15, "classes.web.volumes[0].path", `overlaps classes.web.scratch[0].path ("/var/lib")`},
		{"equal paths", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "1m"
[[classes.web.scratch]]
path = "/tmp"
size = "1m"
`, 15, "classes.web.scratch[1].path", "overlaps classes.web.scratch[0].path"},
		{"undefined backend", head + `[classes.web]
mode = "machine"
backend = "nfs"
`, 11, "classes.web.backend", `backend "nfs" is not defined; use one of local, sized, or define [backends.nfs]`},
		{"machine without backend", head + `[classes.web]
mode = "machine"
`, 9, "classes.web.backend", "backend is required"},
		{"volume undefined backend", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/data"
backend = "nfs"
name = "{name}"
`, 13, "classes.web.volumes[0].backend", `backend "nfs" is not defined`},
		{"immutable with backend", head + `[classes.web]
mode = "immutable"
backend = "local"
`, 11, "classes.web.backend", "only machine classes have a root volume; remove backend"},
		{"immutable with on_image_change", head + `[classes.web]
mode = "immutable"
on_image_change = "keep"
`, 11, "classes.web.on_image_change", "only machine classes have a root volume"},
		{"bad on_image_change", head + `[classes.web]
mode = "machine"
backend = "local"
on_image_change = "rebuild"
`, 12, "classes.web.on_image_change", `use "keep" or "refuse"`},
		{"machine size on dir backend", head + `[classes.web]
mode = "machine"
backend = "local"
size = "1g"
`, 12, "classes.web.size", "dir backend, which has no size limit"},
		{"shared on loopfile", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/data"
backend = "sized"
name = "cache"
shared = true
`, 15, "classes.web.volumes[0].shared", "shared volumes need a dir backend"},
		{"volume without name", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/data"
backend = "local"
`, 11, "classes.web.volumes[0].name", "name is required"},
		{"unknown placeholder", head + `[classes.web]
mode = "machine"
backend = "local"
name = "{pod}"
`, 12, "classes.web.name", "unknown placeholder {pod}"},
		{"unsafe literal in name", head + `[classes.web]
mode = "machine"
backend = "local"
name = "../{name}"
`, 12, "classes.web.name", `"../" cannot be part of a volume name`},
		{"default_size on dir", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/srv/dir"
default_size = "1g"
[classes.web]
mode = "immutable"
`, 6, "backends.local.default_size", "only loopfile backends have a size"},
		{"relative backend path", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "srv"
[classes.web]
mode = "immutable"
`, 5, "backends.local.path", `"srv" is not absolute`},
		{"bad backend type", `version = 1
default_class = "web"
[backends.local]
type = "nfs"
path = "/srv"
[classes.web]
mode = "immutable"
`, 4, "backends.local.type", `type "nfs" is not a backend type`},
		{"bad class name", head + `[classes.web]
mode = "immutable"
[classes.Web]
mode = "immutable"
`, 11, "classes.Web", `class name "Web" is not allowed`},
		{"undefined default class", `version = 1
default_class = "www"
[classes.web]
mode = "immutable"
`, 2, "default_class", `class "www" is not defined; use one of web, or define [classes.www]`},
		{"missing default class", `version = 1
[classes.web]
mode = "immutable"
`, 0, "default_class", "default_class is required"},
		{"missing version", `default_class = "web"
[classes.web]
mode = "immutable"
`, 0, "version", "version = 1 is required"},
		{"wrong version", `version = 2
default_class = "web"
[classes.web]
mode = "immutable"
`, 1, "version", "version 2 is not supported"},
		{"wrong type", head + `[classes.web]
mode = "immutable"
selectable = "yes"
`, 11, "classes.web.selectable", "wrong type of value: use true or false"},
		{"syntax error", head + `[classes.web]
mode = "immutable
`, 10, "", "not valid TOML"},
		{"duplicate key", head + `[classes.web]
mode = "immutable"
mode = "machine"
`, 11, "classes.web.mode", "not valid TOML: key mode is already defined"},
		{"overcommit on a dir backend", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/srv/dir"
overcommit = true
[classes.web]
mode = "immutable"
`, 6, "backends.local.overcommit", "only loopfile backends can overcommit"},
		{"overcommit not a bool", `version = 1
default_class = "web"
[backends.sized]
type = "loopfile"
path = "/srv/sized"
overcommit = "yes"
[classes.web]
mode = "immutable"
`, 6, "backends.sized.overcommit", "wrong type of value: use true or false"},
		{"backend in the state dir's locks", `version = 1
default_class = "web"
state_dir = "/var/lib/cp"
[backends.local]
type = "dir"
path = "/var/lib/cp/locks/v"
[classes.web]
mode = "immutable"
`, 6, "backends.local.path", `inside the state dir's locks directory ("/var/lib/cp/locks"), which the shim manages: put the backend directly under state_dir, like "/var/lib/cp/volumes"`},
		{"backend is the templates dir", `version = 1
default_class = "web"
state_dir = "/var/lib/cp"
[backends.local]
type = "dir"
path = "/var/lib/cp/templates"
[classes.web]
mode = "immutable"
`, 6, "backends.local.path", "inside the state dir's templates directory"},
		{"backend is the state dir", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/var/lib/containerd-persist"
[classes.web]
mode = "immutable"
`, 5, "backends.local.path", `is the state dir: put the backend in a directory of its own, like "/var/lib/containerd-persist/volumes"`},
		{"state dir inside a backend", `version = 1
default_class = "web"
state_dir = "/srv/dir/state"
[backends.local]
type = "dir"
path = "/srv/dir"
[classes.web]
mode = "immutable"
`, 3, "state_dir", `the state dir "/srv/dir/state" is inside backend local ("/srv/dir")`},
		{"two backends on one path", head + `[backends.thin]
type = "loopfile"
path = "/srv/dir"
default_size = "16MiB"
[classes.web]
mode = "immutable"
`, 11, "backends.thin.path", `"/srv/dir" is also the path of backend local: give each backend a directory of its own`},
		{"backend inside another", head + `[backends.inner]
type = "dir"
path = "/srv/sized/inner"
[classes.web]
mode = "immutable"
`, 11, "backends.inner.path", `"/srv/sized/inner" is inside backend sized ("/srv/sized")`},
		{"backend holding another", `version = 1
default_class = "web"
[backends.all]
type = "dir"
path = "/srv"
[backends.sized]
type = "loopfile"
path = "/srv/sized"
[classes.web]
mode = "immutable"
`, 8, "backends.sized.path", `"/srv/sized" is inside backend all ("/srv")`},
		{"state dir /etc", `version = 1
default_class = "web"
state_dir = "/etc"
[classes.web]
mode = "immutable"
`, 3, "state_dir", `"/etc" is a system directory: use a directory of its own, like /var/lib/containerd-persist`},
		{"state dir /var/lib", `version = 1
default_class = "web"
state_dir = "/var/lib"
[classes.web]
mode = "immutable"
`, 3, "state_dir", "is a system directory"},
		{"state dir under /proc", `version = 1
default_class = "web"
state_dir = "/proc/self/cwd"
[classes.web]
mode = "immutable"
`, 3, "state_dir", `"/proc/self/cwd" is at or under /proc, which the kernel provides`},
		{"backend /home", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/home"
[classes.web]
mode = "immutable"
`, 5, "backends.local.path", `"/home" is a system directory: use a directory of its own, like /srv/persist`},
		{"backend under /dev", `version = 1
default_class = "web"
[backends.local]
type = "dir"
path = "/dev/shm/persist"
[classes.web]
mode = "immutable"
`, 5, "backends.local.path", "at or under /dev"},
		{"disk scratch below mkfs minimum", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "disk"
size = "100KiB"
`, 14, "classes.web.scratch[0].size", "disk scratch of 100KiB is too small for an ext4 image: use at least 104KiB"},
		{"loopfile volume without room for a journal", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/data"
backend = "sized"
name = "{name}"
size = "1MiB"
`, 15, "classes.web.volumes[0].size", "a loopfile volume of 1MiB is too small for an ext4 image: use at least 2MiB"},
		{"machine root volume too small", head + `[classes.web]
mode = "machine"
backend = "sized"
size = "1MiB"
`, 12, "classes.web.size", "use at least 2MiB"},
		{"default_size too small", `version = 1
default_class = "web"
[backends.sized]
type = "loopfile"
path = "/srv/sized"
default_size = "64k"
[classes.web]
mode = "immutable"
`, 6, "backends.sized.default_size", "default_size of 64KiB is too small"},
		{"absurd scratch size", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "16383TiB"
`, 13, "classes.web.scratch[0].size", "scratch of 16383TiB is too large: sizes go up to 8TiB"},
		{"absurd disk scratch size", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "disk"
size = "9TiB"
`, 14, "classes.web.scratch[0].size", "disk scratch of 9TiB is too large: sizes go up to 8TiB"},
		{"absurd default_size", `version = 1
default_class = "web"
[backends.sized]
type = "loopfile"
path = "/srv/sized"
default_size = "16383TiB"
[classes.web]
mode = "immutable"
`, 6, "backends.sized.default_size", "too large: sizes go up to 8TiB"},
		{"scratch at /dev", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/dev"
size = "1m"
`, 12, "classes.web.scratch[0].path", `"/dev" is at or under /dev, which the runtime sets up in every container`},
		{"scratch under /dev", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/dev/shm"
size = "1m"
`, 12, "classes.web.scratch[0].path", "at or under /dev"},
		{"volume under /proc", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/proc/x"
backend = "local"
name = "{name}"
`, 12, "classes.web.volumes[0].path", "at or under /proc"},
		{"volume at /sys", head + `[classes.web]
mode = "immutable"
[[classes.web.volumes]]
path = "/sys"
backend = "local"
name = "{name}"
`, 12, "classes.web.volumes[0].path", "at or under /sys"},
		{"path over PATH_MAX", `version = 1
default_class = "web"
state_dir = "` + strings.Repeat("/"+strings.Repeat("d", 200), 21) + `"
[classes.web]
mode = "immutable"
`, 3, "state_dir", "path is 4221 bytes long: Linux paths are at most 4095 bytes (PATH_MAX)"},
		{"component over NAME_MAX", head + `[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/` + strings.Repeat("n", 256) + `"
size = "1m"
`, 12, "classes.web.scratch[0].path", "a component of the path is 256 bytes long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.doc), "bad.toml")
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", c)
			}
			var cerr *Error
			if !errors.As(err, &cerr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v (%T) is not an *Error wrapping ErrInvalid", err, err)
			}
			if len(cerr.Problems) != 1 {
				t.Fatalf("want exactly one problem, got %q", cerr.Lines())
			}
			p := cerr.Problems[0]
			if p.Line != tc.line || p.Key != tc.key || !strings.Contains(p.Msg, tc.msg) {
				t.Fatalf("problem %+v, want line %d key %q msg containing %q", p, tc.line, tc.key, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "config bad.toml: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Error() = %q, want one line starting with the source", err)
			}
		})
	}
}

// Every problem is reported at once, in line order, and Error() joins them.
func TestParseCollectsAll(t *testing.T) {
	doc := `version = 1
default_class = "web"
[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "0"
[[classes.web.scratch]]
path = "tmp"
size = "1.5GiB"
[classes.x]
mode = "vm"
`
	_, err := Parse([]byte(doc), "all.toml")
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("Parse = %v, want *Error", err)
	}
	want := []string{
		`line 7: classes.web.scratch[0].size: "0" is not a size: size must be greater than zero`,
		`line 9: classes.web.scratch[1].path: "tmp" is not absolute: use an absolute directory in the container, like /tmp`,
		`line 10: classes.web.scratch[1].size: "1.5GiB" is not a size: use a whole number, like 1536MiB rather than 1.5GiB`,
		`line 12: classes.x.mode: mode "vm" is not a mode: use "immutable" or "machine"`,
	}
	if got := cerr.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Lines() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got, wantErr := err.Error(), "config all.toml: "+strings.Join(want, "; "); got != wantErr {
		t.Fatalf("Error() =\n%s\nwant\n%s", got, wantErr)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{Line: 3, Key: "a.b", Msg: "bad"}, "line 3: a.b: bad"},
		{Problem{Key: "version", Msg: "required"}, "version: required"},
		{Problem{Line: 2, Msg: "not valid TOML"}, "line 2: not valid TOML"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// What the refusals above must leave alone: a backend directly under the
// state dir, directories under /tmp and /var/lib, the smallest and largest
// sizes, and overcommit on a loopfile backend.
func TestParseLimitsAllowed(t *testing.T) {
	c, err := Parse([]byte(`version = 1
default_class = "web"
state_dir = "/tmp/persist/state"
[backends.local]
type = "dir"
path = "/tmp/persist/state/volumes"
[backends.sized]
type = "loopfile"
path = "/var/lib/persist-images"
default_size = "2MiB"
[backends.thin]
type = "loopfile"
path = "/tmp/persist/thin"
overcommit = true
default_size = "8TiB"
[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "disk"
size = "104KiB"
[[classes.web.scratch]]
path = "/run"
size = "8TiB"
[[classes.web.scratch]]
path = "/devices"
size = "1m"
[[classes.web.volumes]]
path = "/data"
backend = "thin"
name = "{name}"
size = "2MiB"
`), "good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Backends["thin"].Overcommit || c.Backends["sized"].Overcommit || c.Backends["local"].Overcommit {
		t.Errorf("overcommit: thin %v sized %v local %v, want only thin", c.Backends["thin"].Overcommit, c.Backends["sized"].Overcommit, c.Backends["local"].Overcommit)
	}
	if c.Backends["sized"].DefaultSize != MinVolumeSize || c.Backends["thin"].DefaultSize != MaxSize || c.Classes["web"].Scratch[0].Size != MinDiskSize {
		t.Errorf("sizes at the limits changed: %+v %+v", c.Backends, c.Classes["web"].Scratch)
	}
}
