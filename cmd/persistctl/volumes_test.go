package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// volumeJSON is a volume as volumes ls, inspect and create print it.
type volumeJSON struct {
	Name         string           `json:"name"`
	Namespace    string           `json:"namespace"`
	Backend      string           `json:"backend"`
	Type         string           `json:"type"`
	Size         uint64           `json:"size"`
	Used         *uint64          `json:"used"`
	Class        string           `json:"class"`
	Created      time.Time        `json:"created"`
	LastAttached time.Time        `json:"last_attached"`
	Dir          string           `json:"dir"`
	Holder       *volumes.Holder  `json:"holder"`
	Lock         string           `json:"lock"`
	Mount        string           `json:"mount"`
	ImageChanges []map[string]any `json:"image_changes"`
}

func TestVolumesLifecycle(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	before := time.Now().Add(-time.Second)

	var made volumeJSON
	w.okJSON(&made, "volumes", "create", "--json", "--backend", "local", "--class", "vm", "app")
	if made.Name != "app" || made.Namespace != "default" || made.Backend != "local" || made.Type != "dir" ||
		made.Size != 0 || made.Used != nil || made.Class != "vm" || made.Holder != nil ||
		made.Dir != filepath.Join(w.dir, "volumes", "default", "app") || made.Created.Before(before) {
		t.Errorf("create --json = %+v", made)
	}
	w.okJSON(&made, "volumes", "create", "--json", "--backend", "sized", "--size", "8MiB", "data")
	if made.Type != "loopfile" || made.Size != 8<<20 || made.Used == nil || *made.Used < 8<<20 { // reserved: every block allocated
		t.Errorf("create --json of a loopfile volume = %+v (used %v)", made, made.Used)
	}
	w.okJSON(&made, "-n", "other", "volumes", "create", "--json", "--backend", "sized", "big")
	if made.Namespace != "other" || made.Size != 16<<20 {
		t.Errorf("create with the backend's default size = %+v", made)
	}

	r := w.run(nil, "volumes", "create", "--backend", "sized", "app")
	if r.code != 1 || !strings.Contains(r.stderr, "already exists") || !strings.Contains(r.stderr, "backend local") {
		t.Errorf("create of a name another backend holds: exit %d %q", r.code, r.stderr)
	}
	r = w.run(nil, "volumes", "create", "--backend", "local", "--size", "1GiB", "x")
	if r.code != 1 || !strings.Contains(r.stderr, "no size limit") {
		t.Errorf("create --size on a dir backend: exit %d %q", r.code, r.stderr)
	}
	r = w.run(nil, "volumes", "create", "y")
	if r.code != 1 || !strings.Contains(r.stderr, "--backend: one of local, sized") {
		t.Errorf("create with two backends and no --backend: exit %d %q", r.code, r.stderr)
	}
	r = w.run(nil, "volumes", "create", "--backend", "local", "../x")
	if r.code != 1 || !strings.Contains(r.stderr, "not a valid volume name") {
		t.Errorf("create of a bad name: exit %d %q", r.code, r.stderr)
	}

	var list []volumeJSON
	w.okJSON(&list, "volumes", "ls", "--json")
	if len(list) != 2 || list[0].Name != "app" || list[1].Name != "data" || list[1].Backend != "sized" {
		t.Fatalf("ls --json = %+v", list)
	}
	w.okJSON(&list, "volumes", "ls", "--json", "-n", "other")
	if len(list) != 1 || list[0].Name != "big" {
		t.Fatalf("ls -n other = %+v", list)
	}
	w.okJSON(&list, "volumes", "ls", "--json", "--all-namespaces")
	if len(list) != 3 {
		t.Fatalf("ls --all-namespaces = %+v", list)
	}
	table := w.ok("volumes", "ls", "-A")
	for _, want := range []string{"NAMESPACE", "ATTACHED TO", "other", "big", "16MiB", "loopfile"} {
		if !strings.Contains(table, want) {
			t.Errorf("ls table lacks %q:\n%s", want, table)
		}
	}

	var ins volumeJSON
	w.okJSON(&ins, "volumes", "inspect", "--json", "data")
	if ins.Name != "data" || ins.Type != "loopfile" || ins.Size != 8<<20 ||
		ins.Lock != filepath.Join(w.dir, "images", ".locks", "default", "data") ||
		ins.Mount != filepath.Join(w.dir, "state", "mounts", "default", "data") {
		t.Errorf("inspect --json = %+v", ins)
	}
	if r := w.run(nil, "volumes", "inspect", "nope"); r.code != 1 || !strings.Contains(r.stderr, "volume default/nope does not exist") {
		t.Errorf("inspect of a missing volume: exit %d %q", r.code, r.stderr)
	}

	// du: the root, a directory, a file and a hard link to it.
	content := filepath.Join(w.dir, "volumes", "default", "app", "fs")
	os.Mkdir(filepath.Join(content, "d"), 0o755)
	os.WriteFile(filepath.Join(content, "d", "f"), bytes.Repeat([]byte("x"), 10000), 0o644)
	os.Link(filepath.Join(content, "d", "f"), filepath.Join(content, "hard"))
	os.Symlink("/etc", filepath.Join(content, "etc"))
	var du struct {
		Name     string  `json:"name"`
		Bytes    uint64  `json:"bytes"`
		Apparent uint64  `json:"apparent_bytes"`
		Inodes   uint64  `json:"inodes"`
		Image    *uint64 `json:"image_bytes"`
	}
	w.okJSON(&du, "volumes", "du", "--json", "app")
	if du.Name != "app" || du.Inodes != 4 || du.Apparent < 10000 || du.Apparent > 10000+4*4096 || du.Bytes < 10000 || du.Image != nil {
		t.Errorf("du --json = %+v: want 4 inodes (the link to /etc is not followed, the hard link counted once)", du)
	}
	w.okJSON(&du, "volumes", "du", "--json", "data")
	if du.Image == nil || *du.Image == 0 || du.Inodes < 2 {
		t.Errorf("du --json of a loopfile volume = %+v", du)
	}
	if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(w.dir)); len(ms) > 0 {
		t.Errorf("du left mounts: %v", ms)
	}

	w.ok("volumes", "rm", "app", "data")
	w.okJSON(&list, "volumes", "ls", "--json")
	if len(list) != 0 {
		t.Errorf("after rm, ls = %+v", list)
	}
	for _, p := range []string{"volumes/default/app", "images/default/data"} {
		if _, err := os.Lstat(filepath.Join(w.dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s is still there after rm: %v", p, err)
		}
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("rm followed the link to /etc: %v", err)
	}
	if r := w.run(nil, "volumes", "rm", "app"); r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("rm of a missing volume: exit %d %q", r.code, r.stderr)
	}
	if hidden, _ := filepath.Glob(filepath.Join(w.dir, "*", "default", ".*")); len(hidden) > 0 {
		t.Errorf("rm left %v", hidden)
	}
}

func TestRemoveHeldVolume(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "held")
	locks := volumes.NewLocks()
	h := volumes.Holder{Namespace: "default", Container: "web-7", Since: time.Now().UTC(), PID: os.Getpid()}
	lock := filepath.Join(w.dir, "volumes", ".locks", "default", "held")
	if err := locks.Acquire(lock, h, false); err != nil {
		t.Fatal(err)
	}
	var list []volumeJSON
	w.okJSON(&list, "volumes", "ls", "--json")
	if len(list) != 1 || list[0].Holder == nil || list[0].Holder.Container != "web-7" || list[0].Holder.PID != os.Getpid() ||
		!list[0].Holder.Since.Equal(h.Since.Truncate(time.Nanosecond)) {
		t.Fatalf("ls --json of a held volume = %+v", list)
	}
	if table := w.ok("volumes", "ls"); !strings.Contains(table, "web-7") {
		t.Errorf("ls table does not name the holder:\n%s", table)
	}
	for _, args := range [][]string{{"volumes", "rm", "held"}, {"volumes", "export", "held", filepath.Join(w.dir, "x.tar")}} {
		r := w.run(nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "held by container web-7") {
			t.Errorf("%v of a held volume: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "volumes", "default", "held", "volume.json")); err != nil {
		t.Errorf("a refused rm removed the volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "x.tar")); !os.IsNotExist(err) {
		t.Errorf("a refused export left a file: %v", err)
	}
	if err := locks.Release(lock, h); err != nil {
		t.Fatal(err)
	}
	w.ok("volumes", "rm", "held")
}

func TestExportImport(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "sized", "src")
	// Fill the loopfile volume through a mount of its own.
	img := filepath.Join(w.dir, "images", "default", "src", "disk.img")
	mnt := t.TempDir()
	if out, err := runCmd("mount", "-o", "loop", img, mnt); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	os.WriteFile(filepath.Join(mnt, "hello"), []byte("hello\n"), 0o640)
	os.Symlink("/", filepath.Join(mnt, "root"))
	os.Chown(filepath.Join(mnt, "hello"), 33, 33)
	if out, err := runCmd("umount", mnt); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}

	archive := filepath.Join(w.dir, "src.tar")
	w.ok("volumes", "export", "src", archive)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	// To stdout, the same stream.
	if out := w.ok("volumes", "export", "src"); len(out) != len(data) {
		t.Errorf("export to stdout wrote %d bytes, to a file %d", len(out), len(data))
	}
	// From stdin into a dir backend.
	r := w.run(data, "volumes", "import", "--backend", "local", "copy")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("import: exit %d, stderr %q (no progress bar when stderr is not a terminal)", r.code, r.stderr)
	}
	content := filepath.Join(w.dir, "volumes", "default", "copy", "fs")
	if b, err := os.ReadFile(filepath.Join(content, "hello")); err != nil || string(b) != "hello\n" {
		t.Errorf("imported hello = %q, %v", b, err)
	}
	var st os.FileInfo
	if st, err = os.Lstat(filepath.Join(content, "hello")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("imported hello mode %v, %v", st.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(content, "root")); err != nil || target != "/" {
		t.Errorf("the link to / came back as %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(content, "lost+found")); err != nil {
		t.Errorf("lost+found of the image was not carried over: %v", err)
	}
	// From a file into a loopfile backend, replacing with --force.
	r = w.run(nil, "volumes", "import", "--backend", "sized", "src", archive)
	if r.code != 1 || !strings.Contains(r.stderr, "--force") {
		t.Errorf("import over an existing volume: exit %d %q", r.code, r.stderr)
	}
	var m volumeJSON
	w.okJSON(&m, "volumes", "import", "--json", "--backend", "sized", "--force", "src", archive)
	if m.Name != "src" || m.Type != "loopfile" || m.Size != 16<<20 {
		t.Errorf("import --json = %+v", m)
	}
	var du struct{ Inodes uint64 }
	w.okJSON(&du, "volumes", "du", "--json", "src")
	if du.Inodes != 4 { // root, lost+found, hello, root link
		t.Errorf("the reimported volume has %d inodes, want 4", du.Inodes)
	}
	if ms, _ := mountinfo.GetMounts(mountinfo.PrefixFilter(w.dir)); len(ms) > 0 {
		t.Errorf("export or import left mounts: %v", ms)
	}
	if left, _ := os.ReadDir(filepath.Join(w.dir, "state", "mounts", "default")); len(left) > 0 {
		t.Errorf("export or import left mount dirs: %v", left)
	}
	if r := w.run([]byte("not a tar"), "volumes", "import", "--backend", "local", "junk"); r.code != 1 {
		t.Errorf("import of junk: exit %d", r.code)
	}
	if _, err := os.Lstat(filepath.Join(w.dir, "volumes", "default", "junk")); !os.IsNotExist(err) {
		t.Errorf("a failed import left a volume: %v", err)
	}
	if hidden, _ := filepath.Glob(filepath.Join(w.dir, "*", "default", ".*")); len(hidden) > 0 {
		t.Errorf("left %v", hidden)
	}
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
