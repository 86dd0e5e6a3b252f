package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refusedConfig holds one of each config that must be refused before any
// container meets it. {dir} is the case's directory.
const refusedConfig = `version = 1
state_dir = "{dir}/state"
default_class = "web"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[backends.sized]
type = "loopfile"
path = "{dir}/volumes"
default_size = "16MiB"

[backends.locks]
type = "dir"
path = "{dir}/state/locks/v"

[backends.etc]
type = "dir"
path = "/etc"

[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/var/tmp"
medium = "disk"
size = "64KiB"
[[classes.web.scratch]]
path = "/dev"
size = "1MiB"
[[classes.web.scratch]]
path = "/tmp"
size = "16383TiB"
`

// persistctl config check refuses each, with its key and line, one per
// line; a container create meets the same refusal as one line.
func TestConfigCheckRefuses(t *testing.T) {
	tc := newCase(t, "")
	path := filepath.Join(tc.dir, "refused.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(refusedConfig, "{dir}", tc.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := tc.persistctl("config", "check", path)
	if err == nil {
		t.Fatalf("config check passed a config it must refuse:\n%s", out)
	}
	t.Logf("config check:\n%s", out)
	for _, want := range []string{
		`line 11: backends.sized.path: "` + tc.dir + `/volumes" is also the path of backend local`,
		`line 16: backends.locks.path: "` + tc.dir + `/state/locks/v" is inside the state dir's locks directory`,
		`line 20: backends.etc.path: "/etc" is a system directory`,
		`line 27: classes.web.scratch[0].size: disk scratch of 64KiB is too small for an ext4 image: use at least 104KiB`,
		`line 29: classes.web.scratch[1].path: "/dev" is at or under /dev, which the runtime sets up in every container`,
		`line 33: classes.web.scratch[2].size: scratch of 16383TiB is too large: sizes go up to 8TiB`,
	} {
		if !containsLine(out, want) {
			t.Errorf("config check does not say %q", want)
		}
	}
	if n := len(strings.Split(strings.TrimSpace(out), "\n")); n != 6 {
		t.Errorf("config check printed %d lines, want one per problem, 6", n)
	}

}

// A container create meets the same refusals, as one line naming each key
// and line, and nothing is made.
func TestRefusedConfigAtCreate(t *testing.T) {
	tc := newCase(t, "")
	path := filepath.Join(tc.dir, "refused.toml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(refusedConfig, "{dir}", tc.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	tc.configPath = path
	out, err := tc.run("refused", image1, nil, "true")
	if err == nil {
		t.Fatalf("a container was created with a refused config: %s", out)
	}
	t.Logf("create: %s", out)
	first, _, _ := strings.Cut(out, "\n")
	for _, want := range []string{"config " + path + ": line 11: backends.sized.path", "; line 16: backends.locks.path", "; line 20: backends.etc.path",
		"; line 27: classes.web.scratch[0].size", "; line 29: classes.web.scratch[1].path", "; line 33: classes.web.scratch[2].size"} {
		if !strings.Contains(first, want) {
			t.Errorf("the create error does not say %q on its first line", want)
		}
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("the create error is not one line:\n%s", out)
	}
	if err := tc.remove("refused"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tc.stateDir); !os.IsNotExist(err) {
		t.Errorf("a refused config made its state dir: %v", err)
	}
}
