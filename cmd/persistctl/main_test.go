package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd-persist/containerd-persist/config"
)

// binary is persistctl, built once by TestMain: the tests run it as an
// operator would, and check its output and exit code.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "persistctl-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "persistctl")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build persistctl: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needRoot skips a test that needs root, and fails it when CI is set.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("this test needs root, and CI is set: run the tests as root")
	}
	t.Skip("needs root")
}

// world is a config whose state dir and backends are in a temp dir.
type world struct {
	t      *testing.T
	dir    string
	config string
}

const worldConfig = `version = 1
state_dir = "{dir}/state"
default_class = "web"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[backends.sized]
type = "loopfile"
path = "{dir}/images"
default_size = "16MiB"

[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "memory"
size = "8MiB"
[[classes.web.scratch]]
path = "/var/tmp"
medium = "disk"
size = "1GiB"

[classes.vm]
mode = "machine"
backend = "local"
selectable = true

[classes.db]
mode = "immutable"
selectable = true
[[classes.db.volumes]]
path = "/var/lib/db"
backend = "sized"
name = "{name}-data"
size = "32MiB"
[[classes.db.volumes]]
path = "/srv/shared"
backend = "local"
name = "common"
shared = true
`

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	w.config = filepath.Join(w.dir, "persist.toml")
	if err := os.WriteFile(w.config, []byte(strings.ReplaceAll(worldConfig, "{dir}", w.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"volumes", "images"} {
		if err := os.Mkdir(filepath.Join(w.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// result is what a run of persistctl printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

// run runs persistctl with the world's config; stdin, if given, is fed in.
func (w *world) run(stdin []byte, args ...string) result {
	w.t.Helper()
	return runIn(w.t, stdin, append([]string{"--config", w.config}, args...)...)
}

func runIn(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run persistctl %v: %v", args, err)
	}
	return r
}

// ok runs persistctl and fails the test unless it succeeds.
func (w *world) ok(args ...string) string {
	w.t.Helper()
	r := w.run(nil, args...)
	if r.code != 0 {
		w.t.Fatalf("persistctl %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs persistctl and decodes its JSON output into v.
func (w *world) okJSON(v any, args ...string) {
	w.t.Helper()
	out := w.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		w.t.Fatalf("persistctl %v printed no JSON: %v\n%s", args, err, out)
	}
}

func TestConfigDefault(t *testing.T) {
	r := runIn(t, nil, "config", "default")
	if r.code != 0 || r.stdout != string(config.DefaultTOML) {
		t.Fatalf("config default: exit %d, printed\n%s", r.code, r.stdout)
	}
}

func TestConfigCheck(t *testing.T) {
	w := newWorld(t)
	r := w.run(nil, "config", "check", w.config)
	if r.code != 0 || r.stdout != "config "+w.config+" is valid\n" {
		t.Fatalf("check of a good config: exit %d: %q %q", r.code, r.stdout, r.stderr)
	}
	// With no FILE, --config is checked.
	if out := w.ok("config", "check"); !strings.Contains(out, w.config) {
		t.Errorf("config check without FILE checked %q, want %s", out, w.config)
	}

	bad := filepath.Join(w.dir, "bad.toml")
	body := "version = 1\ndefault_class = \"nope\"\n[classes.web]\nmode = \"vm\"\n[[classes.web.scratch]]\npath = \"tmp\"\nsize = \"12XB\"\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, perr := config.Parse([]byte(body), bad)
	var cerr *config.Error
	if !errors.As(perr, &cerr) || len(cerr.Lines()) < 3 {
		t.Fatalf("the bad config should have several problems: %v", perr)
	}
	r = w.run(nil, "config", "check", bad)
	if r.code != 1 {
		t.Fatalf("check of a bad config: exit %d, want 1", r.code)
	}
	if want := strings.Join(cerr.Lines(), "\n") + "\n"; r.stdout != want {
		t.Errorf("check printed\n%s\nwant every problem, one per line:\n%s", r.stdout, want)
	}
	for _, want := range []string{"line 4: classes.web.mode", "line 6: classes.web.scratch[0].path", "line 7: classes.web.scratch[0].size", `"12XB" is not a size`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q", want)
		}
	}

	r = w.run(nil, "config", "check", "--json", bad)
	var res struct {
		Source   string
		Valid    bool
		Problems []struct {
			Line    int
			Key     string
			Message string
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 {
		t.Fatalf("check --json: exit %d, %v: %s", r.code, err, r.stdout)
	}
	if res.Source != bad || res.Valid || len(res.Problems) != len(cerr.Problems) {
		t.Fatalf("check --json = %+v", res)
	}
	for i, p := range cerr.Problems {
		got := res.Problems[i]
		if got.Line != p.Line || got.Key != p.Key || got.Message != p.Msg {
			t.Errorf("problem %d = %+v, want %+v", i, got, p)
		}
	}

	r = w.run(nil, "config", "check", filepath.Join(w.dir, "missing.toml"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.toml") {
		t.Errorf("check of a missing file: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestClasses(t *testing.T) {
	w := newWorld(t)
	var got []classInfo
	w.okJSON(&got, "classes", "--json")
	if len(got) != 3 || got[0].Name != "db" || got[1].Name != "vm" || got[2].Name != "web" {
		t.Fatalf("classes --json = %+v", got)
	}
	db, vm, web := got[0], got[1], got[2]
	if db.Mode != "immutable" || !db.Selectable || db.Default || db.Root != nil || len(db.Scratch) != 0 {
		t.Errorf("db = %+v", db)
	}
	if len(db.Volumes) != 2 || db.Volumes[0] != (volumeInfo{Path: "/var/lib/db", Backend: "sized", Name: "{name}-data", Size: 32 << 20}) ||
		db.Volumes[1] != (volumeInfo{Path: "/srv/shared", Backend: "local", Name: "common", Shared: true}) {
		t.Errorf("db volumes = %+v", db.Volumes)
	}
	if vm.Mode != "machine" || !vm.Selectable || vm.Root == nil || *vm.Root != (volumeInfo{Path: "/", Backend: "local", Name: "{name}", OnImageChange: "keep"}) {
		t.Errorf("vm = %+v root %+v", vm, vm.Root)
	}
	if web.Mode != "immutable" || web.Selectable || !web.Default ||
		len(web.Scratch) != 2 || web.Scratch[0] != (scratchInfo{"/tmp", "memory", 8 << 20}) || web.Scratch[1] != (scratchInfo{"/var/tmp", "disk", 1 << 30}) {
		t.Errorf("web = %+v", web)
	}

	table := w.ok("classes")
	for _, want := range []string{
		"NAME", "MODE", "SCRATCH", "VOLUMES", "SELECTABLE",
		"/tmp:memory:8MiB,/var/tmp:disk:1GiB", "/var/lib/db:sized:{name}-data,/srv/shared:local:common", "/:local:{name}", "web (default)",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("classes table lacks %q:\n%s", want, table)
		}
	}
}

// Options work after arguments, as docker and kubectl users type them; an
// unknown one is reported as such.
func TestOptionsAfterArguments(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "x", "--backend", "local", "--label", "team=db")
	var made volumeJSON
	w.okJSON(&made, "volumes", "inspect", "x", "--json")
	if made.Name != "x" || made.Backend != "local" {
		t.Errorf("inspect x --json = %+v", made)
	}
	r := runIn(t, nil, "volumes", "ls", "-q", "--config", w.config)
	if r.code != 0 || r.stdout != "x\n" {
		t.Errorf("--config after the command: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = w.run(nil, "volumes", "rm", "x", "--nope")
	if r.code != 1 || !strings.Contains(r.stderr, "flag provided but not defined: -nope") {
		t.Errorf("an unknown option after an argument: exit %d, stderr %q", r.code, r.stderr)
	}
	// After --, a word that looks like an option is an argument.
	r = w.run(nil, "volumes", "rm", "--backend", "local", "--", "-x")
	if r.code != 1 || !strings.Contains(r.stderr, `"-x" is not a valid volume name`) {
		t.Errorf("rm -- -x: exit %d, stderr %q", r.code, r.stderr)
	}
	if out := w.ok("volumes", "rm", "x", "--backend", "local"); out != "removed volume x\n" {
		t.Errorf("rm x --backend local printed %q", out)
	}
	// As docker volume rm -f: a missing volume is no error.
	if r := w.run(nil, "volumes", "rm", "x"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("rm of a missing volume: exit %d, %q", r.code, r.stderr)
	}
	if out := w.ok("volumes", "rm", "x", "--force"); out != "" {
		t.Errorf("rm x --force of a missing volume printed %q", out)
	}
	r = w.run(nil, "volumes", "inspect")
	if r.code != 1 || !strings.Contains(r.stderr, "usage: persistctl volumes inspect NAME") {
		t.Errorf("a missing argument: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestDoctor(t *testing.T) {
	w := newWorld(t)
	sock := filepath.Join(w.dir, "no-containerd.sock")
	r := w.run(nil, "doctor", "--address", sock)
	if r.code != 1 {
		t.Fatalf("doctor with no containerd: exit %d, want 1:\n%s", r.code, r.stdout)
	}
	if !strings.Contains(r.stdout, "containerd:") || !strings.Contains(r.stdout, "does not answer at "+sock) {
		t.Errorf("doctor does not say containerd is missing:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "config:       ok: "+w.config) {
		t.Errorf("doctor does not pass the config:\n%s", r.stdout)
	}
	// Whether the shim is on persistctl's PATH says nothing of containerd's.
	if !strings.Contains(r.stdout, "shim:         containerd did not answer, so it could not say whether it can run runtime io.containerd.persist.v1") {
		t.Errorf("doctor does not say it could not ask containerd about the shim:\n%s", r.stdout)
	}
	var checks []check
	if err := json.Unmarshal([]byte(w.run(nil, "doctor", "--json", "--address", sock).stdout), &checks); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range checks {
		names = append(names, c.Name)
		if c.Name == "containerd" && c.OK {
			t.Errorf("containerd check passed with no containerd")
		}
	}
	if want := "overlayfs tmpfs ext4 loop devices mkfs.ext4 containerd runc shim config overcommit"; strings.Join(names, " ") != want {
		t.Errorf("checks %v, want %s", names, want)
	}
}

func TestAtLeast(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"v2.4.2", true}, {"2.3.0", true}, {"v2.3.0-rc.1", true}, {"v3.0.0", true},
		{"v2.2.9", false}, {"1.7.20", false}, {"", false}, {"v2", false}, {"dev", false},
	} {
		if got := atLeast(tc.v, minContainerd); got != tc.want {
			t.Errorf("atLeast(%q, 2.3) = %v", tc.v, got)
		}
	}
}
