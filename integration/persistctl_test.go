package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listed is a volume as persistctl volumes ls --json prints it.
type listed struct {
	Name         string    `json:"name"`
	Namespace    string    `json:"namespace"`
	Backend      string    `json:"backend"`
	Type         string    `json:"type"`
	Size         uint64    `json:"size"`
	Used         *uint64   `json:"used"`
	LastAttached time.Time `json:"last_attached"`
	LastHolder   string    `json:"last_holder"`
	Class        string    `json:"class"`
	Image        *struct {
		Name string `json:"name"`
	} `json:"image"`
	Holder *struct {
		Namespace string `json:"namespace"`
		Container string `json:"container"`
		PID       int    `json:"pid"`
	} `json:"holder"`
}

func (tc *tcase) mustPersistctl(args ...string) string {
	tc.t.Helper()
	out, err := tc.persistctl(args...)
	if err != nil {
		tc.t.Fatalf("persistctl %v: %v: %s", args, err, out)
	}
	return out
}

func (tc *tcase) volumesLs() map[string]listed {
	tc.t.Helper()
	var vs []listed
	out := tc.mustPersistctl("-n", tc.namespace, "volumes", "ls", "--json")
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		tc.t.Fatalf("volumes ls --json: %v: %s", err, out)
	}
	byName := map[string]listed{}
	for _, v := range vs {
		byName[v.Name] = v
	}
	return byName
}

func TestPersistctlVolumesOfLiveContainers(t *testing.T) {
	tc := newMachineCase(t)
	// The machine root writes a file and deletes one of the image's, which
	// leaves an overlay whiteout in the volume.
	if out, err := tc.start("pc-vm", image1, []string{class("vm"), volName("pc-node")}, "sh", "-c",
		"echo kept > /root/state && rm /etc/image-version && sync && sleep 600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	if out, err := tc.start("pc-db", image1, []string{class("db"), volName("pc")}, "sh", "-c", "echo row > /var/lib/db/table && sync && sleep 600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	tc.eventually("both containers to write", func() bool {
		_, err1 := os.Stat(filepath.Join(tc.dir, "volumes", tc.namespace, "pc-node", "fs", "upper", "root", "state"))
		_, err2 := os.Stat(filepath.Join(tc.stateDir, "mounts", tc.namespace, "pc-data", "data", "table"))
		return err1 == nil && err2 == nil
	})

	vs := tc.volumesLs()
	node, data := vs["pc-node"], vs["pc-data"]
	if len(vs) != 2 || node.Holder == nil || data.Holder == nil {
		t.Fatalf("volumes ls --json = %+v", vs)
	}
	if node.Namespace != tc.namespace || node.Backend != "local" || node.Type != "dir" || node.Class != "vm" ||
		node.Holder.Container != "pc-vm" || node.Holder.Namespace != tc.namespace || node.Holder.PID != tc.shimPID("pc-vm") ||
		node.Image == nil || node.Image.Name != image1 || node.Used != nil {
		t.Errorf("pc-node = %+v holder %+v", node, node.Holder)
	}
	if data.Backend != "sized" || data.Type != "loopfile" || data.Size != 24<<20 || data.Used == nil || *data.Used == 0 ||
		data.Holder.Container != "pc-db" || data.Class != "db" {
		t.Errorf("pc-data = %+v holder %+v", data, data.Holder)
	}
	table := tc.mustPersistctl("-n", tc.namespace, "volumes", "ls")
	mustContain(t, table, "pc-node", "pc-vm", "pc-data", "pc-db", "24MiB")

	out, err := tc.persistctl("-n", tc.namespace, "volumes", "rm", "pc-node")
	if err == nil {
		t.Fatal("rm of an attached volume succeeded")
	}
	mustContain(t, out, "held by container pc-vm", "namespace "+tc.namespace)
	out, err = tc.persistctl("-n", tc.namespace, "volumes", "export", "pc-data", filepath.Join(tc.dir, "x.tar"))
	if err == nil {
		t.Fatal("export of an attached volume succeeded")
	}
	mustContain(t, out, "held by container pc-db")
	// du reads a live loopfile volume where its container has it mounted.
	var du struct {
		Inodes uint64 `json:"inodes"`
		Image  uint64 `json:"image_bytes"`
	}
	if err := json.Unmarshal([]byte(tc.mustPersistctl("-n", tc.namespace, "volumes", "du", "--json", "pc-data")), &du); err != nil {
		t.Fatal(err)
	}
	if du.Inodes < 4 || du.Image == 0 { // root, lost+found, data/, data/table
		t.Errorf("du of the live volume = %+v", du)
	}

	for _, id := range []string{"pc-vm", "pc-db"} {
		if err := tc.remove(id); err != nil {
			t.Fatal(err)
		}
	}
	vs = tc.volumesLs()
	if vs["pc-node"].Holder != nil || vs["pc-node"].LastHolder != "pc-vm" || vs["pc-node"].LastAttached.IsZero() {
		t.Errorf("pc-node after its container went: %+v", vs["pc-node"])
	}

	// The machine volume, exported and imported under another name, carries
	// on in a new container: the file written and the file deleted.
	archive := filepath.Join(tc.dir, "node.tar")
	tc.mustPersistctl("-n", tc.namespace, "volumes", "export", "pc-node", archive)
	tc.mustPersistctl("-n", tc.namespace, "volumes", "import", "--backend", "local", "pc-copy", archive)
	out = tc.mustRun("pc-vm2", image1, []string{class("vm"), volName("pc-copy")}, "sh", "-c", "cat /root/state; ls /etc/image-version; true")
	mustContain(t, out, "kept", "No such file")
	// The loopfile data volume, through a pipe, into the dir backend.
	archive = filepath.Join(tc.dir, "data.tar")
	tc.mustPersistctl("-n", tc.namespace, "volumes", "export", "pc-data", archive)
	tc.mustPersistctl("-n", tc.namespace, "volumes", "import", "--backend", "local", "--force", "pc-node", archive)
	b, err := os.ReadFile(filepath.Join(tc.dir, "volumes", tc.namespace, "pc-node", "fs", "data", "table"))
	if err != nil || string(b) != "row\n" {
		t.Errorf("the imported data volume holds %q, %v", b, err)
	}

	tc.mustPersistctl("-n", tc.namespace, "volumes", "rm", "pc-node", "pc-copy", "pc-data")
	if vs := tc.volumesLs(); len(vs) != 0 {
		t.Errorf("after rm, volumes ls = %+v", vs)
	}
}

const gcConfig = `default_class = "gcm"

[backends.sized]
type = "loopfile"
path = "{dir}/images"
default_size = "32MiB"

[classes.gcm]
mode = "machine"
backend = "sized"
[[classes.gcm.scratch]]
path = "/tmp"
medium = "disk"
size = "16MiB"
`

// A shim killed after its bundle lost the pointer to its journal: containerd
// cleans up what it knows (the task), and only gc can find the rest.
func TestPersistctlGCAfterKilledShim(t *testing.T) {
	tc := newCase(t, gcConfig)
	if err := os.Mkdir(filepath.Join(tc.dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	id := "pc-gc"
	if out, err := tc.start(id, image1, nil, "sh", "-c", "echo kept > /root/mark && sync && sleep 600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	bundle := filepath.Join(daemon.dir, "state/io.containerd.runtime.v2.task", tc.namespace, id)
	journal := filepath.Join(tc.stateDir, "journal", tc.namespace, id)
	tc.eventually("the container to write its mark", func() bool {
		_, err := os.Stat(filepath.Join(tc.stateDir, "mounts", tc.namespace, id, "upper", "root", "mark"))
		return err == nil
	})
	if err := os.Remove(filepath.Join(bundle, "persist-journal")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(tc.shimPID(id), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tc.eventually("containerd to clean up the task", func() bool {
		_, err := os.Stat(bundle)
		return os.IsNotExist(err)
	})
	if len(mountsUnder(tc.dir)) == 0 {
		t.Fatal("nothing was left to gc: the test does not test gc")
	}
	if _, err := os.Stat(journal); err != nil {
		t.Fatalf("the journal is gone: %v", err)
	}

	var found []struct{ Kind, Path string }
	if err := json.Unmarshal([]byte(tc.mustPersistctl("gc", "--dry-run", "--json")), &found); err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 || found[0].Kind != "journal" || found[0].Path != journal {
		t.Errorf("gc --dry-run = %+v, want the journal first", found)
	}
	if len(mountsUnder(tc.dir)) == 0 {
		t.Error("gc --dry-run unmounted")
	}
	out := tc.mustPersistctl("gc")
	mustContain(t, out, "removed", journal)
	if out := tc.mustPersistctl("gc"); out != "nothing to remove\n" {
		t.Errorf("a second gc: %s", out)
	}
	if err := tc.remove(id); err != nil {
		t.Fatal(err)
	}
	tc.assertClean()
	out = tc.mustRun("pc-gc2", image1, []string{volName(id)}, "cat", "/root/mark")
	mustContain(t, out, "kept")
}

// With the test daemon, runc and the shim on PATH, every check passes.
func TestPersistctlDoctor(t *testing.T) {
	tc := newCase(t, webConfig)
	runc := filepath.Join(envOr("TOOLS_DIR", "/var/cache/containerd-persist/tools"), "runc-"+envOr("RUNC_VERSION", "v1.4.3"))
	cmd := exec.Command(filepath.Join(daemon.bin, "persistctl"), "--config", tc.configPath, "doctor", "--address", daemon.address)
	cmd.Env = append(os.Environ(), "PATH="+daemon.bin+":"+runc+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doctor: %v:\n%s", err, out)
	}
	mustContain(t, string(out), "containerd:   ok: 2.", "runc:         ok:", "shim:         ok: "+daemon.bin, "config:       ok: "+tc.configPath)
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 10 || strings.Count(string(out), " ok") != 10 {
		t.Errorf("doctor: want 10 checks ok:\n%s", out)
	}
}
