package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// heldBy holds a volume's lock as a container's shim would, until the test
// ends or the returned func is called.
func (w *world) heldBy(backendDir, name, container string) func() {
	w.t.Helper()
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "default", Container: container, Since: time.Now().UTC(), PID: os.Getpid()}
	lock := filepath.Join(w.dir, backendDir, ".locks", "default", name)
	if err := locks.Acquire(lock, h, false); err != nil {
		w.t.Fatal(err)
	}
	release := func() {
		if err := locks.Release(lock, h); err != nil {
			w.t.Error(err)
		}
	}
	w.t.Cleanup(release)
	return release
}

func TestLabels(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "--label", "team=db", "--label", "note=a,b=c", "pg")
	w.ok("volumes", "create", "--backend", "local", "--label", "team=web", "web")
	w.ok("volumes", "create", "--backend", "local", "bare")

	var got struct {
		Labels map[string]string `json:"labels"`
	}
	w.okJSON(&got, "volumes", "inspect", "--json", "pg")
	if len(got.Labels) != 2 || got.Labels["team"] != "db" || got.Labels["note"] != "a,b=c" {
		t.Errorf("labels made with the volume = %v (a comma is part of the value)", got.Labels)
	}
	if out := w.ok("volumes", "set", "pg", "tier=gold", "team=ops"); out != "labels of volume default/pg: note=a,b=c, team=ops, tier=gold\n" {
		t.Errorf("set printed %q", out)
	}
	if out := w.ok("volumes", "unset", "pg", "note", "missing"); out != "labels of volume default/pg: team=ops, tier=gold\n" {
		t.Errorf("unset printed %q", out)
	}
	b, err := os.ReadFile(filepath.Join(w.dir, "volumes", "default", "pg", "volume.json"))
	if err != nil || !strings.Contains(string(b), `"labels": {`) || !strings.Contains(string(b), `"tier": "gold"`) {
		t.Errorf("volume.json does not keep the labels: %v\n%s", err, b)
	}
	if table := w.ok("volumes", "inspect", "pg"); !containsLine(table, "label", "team=ops") || !containsLine(table, "label", "tier=gold") {
		t.Errorf("inspect does not show the labels:\n%s", table)
	}

	// Selected and printed by label.
	if out := w.ok("volumes", "ls", "-q", "--filter", "label=team"); out != "pg\nweb\n" {
		t.Errorf("ls -q --filter label=team printed %q", out)
	}
	if out := w.ok("volumes", "ls", "--filter", "label!=team", "--format", "{{.Name}}"); out != "bare\n" {
		t.Errorf("ls --filter label!=team printed %q", out)
	}
	out := w.ok("volumes", "ls", "--format", `table {{.Name}}\t{{.Label "team"}}\t{{.Labels}}`)
	if !containsLine(out, "NAME", "TEAM", "LABELS") || !containsLine(out, "pg", "ops", "team=ops,tier=gold") || !containsLine(out, "web", "web", "team=web") {
		t.Errorf("ls --format table printed\n%s", out)
	}
	if out := w.ok("volumes", "inspect", "--format", `{{.Label "tier"}}`, "pg"); out != "gold\n" {
		t.Errorf("inspect --format printed %q", out)
	}

	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"volumes", "set", "pg", "team"}, "write KEY=VALUE"},
		{[]string{"volumes", "set", "pg", "bad key=1"}, "label key"},
		{[]string{"volumes", "create", "--backend", "local", "--label", "x=line\nbreak", "bad"}, "no control characters"},
		{[]string{"volumes", "set", "nope", "a=b"}, "does not exist"},
		{[]string{"volumes", "set", "pg"}, "usage: persistctl volumes set NAME KEY=VALUE..."},
	} {
		if r := w.run(nil, tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want it to say %q", tc.args, r.code, r.stderr, tc.says)
		}
	}

	// A held volume's labels wait until its container is gone.
	release := w.heldBy("volumes", "pg", "pg-1")
	r := w.run(nil, "volumes", "set", "pg", "a=b")
	if r.code != 1 || !strings.Contains(r.stderr, "held by container pg-1 (namespace default)") {
		t.Errorf("set on a held volume: exit %d, %q", r.code, r.stderr)
	}
	release()
	w.ok("volumes", "set", "pg", "a=b")
}

func TestPrune(t *testing.T) {
	w := newWorld(t)
	for _, v := range []struct{ name, team string }{{"a", "db"}, {"b", "db"}, {"c", "web"}, {"held", "db"}} {
		w.ok("volumes", "create", "--backend", "local", "--label", "team="+v.team, v.name)
	}
	w.heldBy("volumes", "held", "app-1")

	if out := w.ok("volumes", "prune", "--dry-run", "--filter", "label=team=db"); out !=
		"would remove volume default/a (backend local)\nwould remove volume default/b (backend local)\n" {
		t.Errorf("prune --dry-run printed %q", out)
	}
	// Without --force it asks; anything but y, or no answer, removes nothing.
	for _, answer := range []string{"", "n\n", "no\n"} {
		r := w.run([]byte(answer), "volumes", "prune", "--filter", "label=team=db")
		if r.code != 1 || !strings.Contains(r.stderr, "Remove them? [y/N]") || !strings.Contains(r.stderr, "nothing removed") ||
			!strings.Contains(r.stderr, "pass --force") || !strings.Contains(r.stderr, "default/a (backend local)") {
			t.Errorf("prune answered %q: exit %d, stderr %q", answer, r.code, r.stderr)
		}
	}
	if out := w.ok("volumes", "ls", "-q"); out != "a\nb\nc\nheld\n" {
		t.Fatalf("a prune that was not confirmed removed volumes: %q", out)
	}
	r := w.run([]byte("y\n"), "volumes", "prune", "--filter", "label=team=db")
	if r.code != 0 || r.stdout != "removed volume default/a\nremoved volume default/b\n" {
		t.Errorf("prune answered y: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	var results []pruneResult
	w.okJSON(&results, "volumes", "prune", "-f", "--json")
	if len(results) != 1 || results[0].Name != "c" || !results[0].Removed {
		t.Errorf("prune -f --json = %+v, want c removed", results)
	}
	if out := w.ok("volumes", "prune", "--force"); out != "no volume to prune\n" {
		t.Errorf("prune with only a held volume left printed %q", out)
	}
	if out := w.ok("volumes", "ls", "-q"); out != "held\n" {
		t.Errorf("after prune, ls -q = %q, want the held volume only", out)
	}
}

func TestRenameAndExists(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "--label", "team=db", "--class", "vm", "old")
	if err := os.WriteFile(filepath.Join(w.dir, "volumes", "default", "old", "fs", "kept"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("n", 200)
	if out := w.ok("volumes", "rename", "old", long); out != "renamed volume default/old to "+long+"\n" {
		t.Errorf("rename printed %q", out)
	}
	var v volumeJSON
	w.okJSON(&v, "volumes", "inspect", "--json", long)
	if v.Name != long || v.Class != "vm" || filepath.Base(v.Dir) == long {
		t.Errorf("the renamed volume = %+v, want its class kept and a derived directory name", v)
	}
	b, err := os.ReadFile(filepath.Join(v.Dir, "fs", "kept"))
	if err != nil || string(b) != "kept" {
		t.Errorf("the renamed volume's content: %q, %v", b, err)
	}

	exists := func(name string, args ...string) int {
		t.Helper()
		r := w.run(nil, append([]string{"volumes", "exists", name}, args...)...)
		if r.code != 2 && (r.stdout != "" || r.stderr != "") {
			t.Errorf("exists %s printed %q %q", name, r.stdout, r.stderr)
		}
		return r.code
	}
	if exists(long) != 0 || exists("old") != 1 || exists(long, "--backend", "sized") != 1 || exists(long, "-n", "other") != 1 {
		t.Error("exists does not tell the renamed volume from the old name")
	}
	if r := w.run(nil, "volumes", "exists", "../x"); r.code != 2 || !strings.Contains(r.stderr, "not a valid volume name") {
		t.Errorf("exists of a bad name: exit %d, %q", r.code, r.stderr)
	}
	if r := w.run(nil, "volumes", "exists", "x", "--backend", "nope"); r.code != 2 || !strings.Contains(r.stderr, "backend \"nope\" is not in config") {
		t.Errorf("exists in a missing backend: exit %d, %q", r.code, r.stderr)
	}

	w.ok("volumes", "create", "--backend", "local", "other")
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"volumes", "rename", long, "other"}, "volume default/other already exists"},
		{[]string{"volumes", "rename", "missing", "new"}, "volume default/missing does not exist"},
		{[]string{"volumes", "rename", long, "../x"}, "not a valid volume name"},
		{[]string{"volumes", "rename", long}, "usage: persistctl volumes rename NAME NEW_NAME"},
	} {
		if r := w.run(nil, tc.args...); r.code != 1 || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%q: exit %d, %q; want it to say %q", tc.args, r.code, r.stderr, tc.says)
		}
	}
	w.heldBy("volumes", "other", "web-3")
	if r := w.run(nil, "volumes", "rename", "other", "free"); r.code != 1 || !strings.Contains(r.stderr, "held by container web-3") {
		t.Errorf("rename of a held volume: exit %d, %q", r.code, r.stderr)
	}
	if exists("free") != 1 || exists("other") != 0 {
		t.Error("a refused rename moved the volume")
	}
}

// volumes import NAME - with two backends picks the one the export came
// from.
func TestImportPicksExportedBackend(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "src")
	archive := []byte(w.ok("volumes", "export", "src"))
	if r := w.run(archive, "volumes", "import", "copy", "-"); r.code != 0 || r.stdout != "imported volume default/copy into backend local\n" {
		t.Fatalf("import with no --backend: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// --backend still wins, and an archive that does not say, or names a
	// backend the config lacks, asks for it.
	r := w.run(archive, "volumes", "import", "--backend", "nope", "c2", "-")
	if r.code != 1 || !strings.Contains(r.stderr, `backend "nope" is not in config`) {
		t.Errorf("import --backend nope: exit %d, %q", r.code, r.stderr)
	}
	if r := w.run([]byte("not a tar"), "volumes", "import", "c3"); r.code != 1 ||
		!strings.Contains(r.stderr, "name a backend with --backend: one of local, sized (the archive does not say which backend it came from)") {
		t.Errorf("import of a foreign stream: exit %d, %q", r.code, r.stderr)
	}
	other := strings.ReplaceAll(strings.ReplaceAll(worldConfig, "[backends.local]", "[backends.elsewhere]"), "backend = \"local\"", "backend = \"elsewhere\"")
	cfg := filepath.Join(w.dir, "other.toml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(other, "{dir}", w.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runIn(t, archive, "--config", cfg, "volumes", "import", "c4")
	if r.code != 1 || !strings.Contains(r.stderr, `(the archive came from backend "local", which config `+cfg+" does not have)") {
		t.Errorf("import from a backend the config lacks: exit %d, %q", r.code, r.stderr)
	}
}

// containsLine reports whether a line of out holds all of words.
func containsLine(out string, words ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			return true
		}
	}
	return false
}

// A dir volume's USED takes a walk of every file: ls leaves it out and
// says how to get it; --du measures it.
func TestListUsedOfDirVolumes(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "app")
	if err := os.WriteFile(filepath.Join(w.dir, "volumes", "default", "app", "fs", "f"), make([]byte, 100<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.run(nil, "volumes", "ls")
	if r.code != 0 || !containsLine(r.stdout, "app", "local", "dir", "-") ||
		r.stderr != "USED of dir volumes takes a walk of every file: add --du, or run persistctl volumes du NAME\n" {
		t.Errorf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var list []volumeJSON
	w.okJSON(&list, "volumes", "ls", "--json")
	if len(list) != 1 || list[0].Used != nil {
		t.Errorf("ls --json measured a dir volume: %+v", list)
	}
	w.okJSON(&list, "volumes", "ls", "--json", "--du")
	if len(list) != 1 || list[0].Used == nil || *list[0].Used < 100<<10 {
		t.Errorf("ls --du --json = %+v, want used >= 100KiB", list)
	}
	r = w.run(nil, "volumes", "ls", "--du")
	if r.code != 0 || !containsLine(r.stdout, "app", "local", "dir", "KiB") || r.stderr != "" {
		t.Errorf("ls --du: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := w.run(nil, "volumes", "ls", "--json", "--format", "json"); r.code != 1 || !strings.Contains(r.stderr, "give one of --json, --format and --quiet") {
		t.Errorf("ls --json --format json: exit %d, %q", r.code, r.stderr)
	}
}
