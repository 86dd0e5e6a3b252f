package integration

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// exitCode is the exit code of a finished persistctl: 0 when err is nil.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("run persistctl: %v", err)
	return -1
}

// What docker, podman and incus users reach for, against volumes that real
// containers hold: labels, filters, formats, exists, prune and rename.
func TestPersistctlParity(t *testing.T) {
	tc := newMachineCase(t)
	ns := []string{"-n", tc.namespace}
	pctl := func(args ...string) (string, int) {
		t.Helper()
		out, err := tc.persistctl(append(ns, args...)...)
		return out, exitCode(t, err)
	}
	must := func(args ...string) string {
		t.Helper()
		return tc.mustPersistctl(append(ns, args...)...)
	}

	must("volumes", "create", "pp-free", "--backend", "local", "--label", "team=db")
	must("volumes", "create", "pp-spare", "--backend", "sized", "--size", "8MiB", "--label", "team=web")
	if out, err := tc.start("pp-vm", image1, []string{class("vm"), volName("pp-node")}, "sh", "-c", "echo kept > /root/state && sync && sleep 600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	tc.eventually("the container to write", func() bool {
		_, err := os.Stat(filepath.Join(tc.dir, "volumes", tc.namespace, "pp-node", "fs", "upper", "root", "state"))
		return err == nil
	})

	// Filters and formats see who holds what.
	if out := must("volumes", "ls", "-q", "--filter", "attached=true"); out != "pp-node\n" {
		t.Errorf("ls --filter attached=true: %q", out)
	}
	if out := must("volumes", "ls", "--filter", "dangling=true", "--format", "{{.Name}} {{.Backend}} {{.Label \"team\"}}"); out != "pp-free local db\npp-spare sized web\n" {
		t.Errorf("ls --filter dangling=true --format: %q", out)
	}
	if out := must("volumes", "ls", "--format", "{{.Name}}={{.AttachedTo}}", "--filter", "name=node"); out != "pp-node=pp-vm\n" {
		t.Errorf("ls --format .AttachedTo: %q", out)
	}
	if _, code := pctl("volumes", "exists", "pp-node"); code != 0 {
		t.Errorf("exists of a held volume: exit %d", code)
	}
	if out, code := pctl("volumes", "exists", "pp-nope"); code != 1 || out != "" {
		t.Errorf("exists of a missing volume: exit %d, %q", code, out)
	}

	// A held volume keeps its labels and its name while its container
	// lives: both are refused, naming the holder.
	for _, args := range [][]string{
		{"volumes", "set", "pp-node", "team=ops"},
		{"volumes", "rename", "pp-node", "pp-moved"},
	} {
		out, code := pctl(args...)
		if code != 1 || !strings.Contains(out, "held by container pp-vm") {
			t.Errorf("%q of a held volume: exit %d: %s", args, code, out)
		}
	}

	// prune takes the free volumes and leaves the held one to its container.
	out := must("volumes", "prune", "--force")
	mustContain(t, out, "removed volume "+tc.namespace+"/pp-free", "removed volume "+tc.namespace+"/pp-spare")
	if strings.Contains(out, "pp-node") {
		t.Errorf("prune touched the held volume: %s", out)
	}
	if out := must("volumes", "ls", "-q"); out != "pp-node\n" {
		t.Errorf("after prune, ls -q = %q", out)
	}
	if _, err := os.Stat(filepath.Join(tc.dir, "volumes", tc.namespace, "pp-node", "fs", "upper", "root", "state")); err != nil {
		t.Errorf("prune reached the held volume's content: %v", err)
	}

	// Once the container is gone: labels, then a rename that a new
	// container finds its data under; the labels survive its attach.
	if err := tc.remove("pp-vm"); err != nil {
		t.Fatal(err)
	}
	must("volumes", "set", "pp-node", "team=ops")
	if out := must("volumes", "rename", "pp-node", "pp-moved"); out != "renamed volume "+tc.namespace+"/pp-node to pp-moved\n" {
		t.Errorf("rename printed %q", out)
	}
	if _, code := pctl("volumes", "exists", "pp-node"); code != 1 {
		t.Errorf("exists of the old name after rename: exit %d", code)
	}
	out = tc.mustRun("pp-vm2", image1, []string{class("vm"), volName("pp-moved")}, "cat", "/root/state")
	mustContain(t, out, "kept")
	vs := tc.volumesLs()
	if len(vs) != 1 || vs["pp-moved"].LastHolder != "pp-vm2" {
		t.Errorf("after the new container, volumes ls = %+v", vs)
	}
	if out := must("volumes", "ls", "-q", "--filter", "label=team=ops"); out != "pp-moved\n" {
		t.Errorf("the labels did not survive the attach: %q", out)
	}

	// A loopfile volume, renamed, is mounted under its new name.
	tc.mustRun("pp-db", image1, []string{class("db"), volName("pq")}, "sh", "-c", "echo row > /var/lib/db/table && sync")
	must("volumes", "rename", "pq-data", "pq2-data")
	out = tc.mustRun("pp-db2", image1, []string{class("db"), volName("pq2")}, "cat", "/var/lib/db/table")
	mustContain(t, out, "row")
	if _, code := pctl("volumes", "exists", "pq-data"); code != 1 {
		t.Errorf("exists of the loopfile volume's old name: exit %d", code)
	}

	must("volumes", "rm", "pp-moved", "pq2-data")
}

// doctor asks containerd whether it can run the runtime: persistctl's own
// PATH has neither the shim nor runc, and every check still passes, with
// the runc that containerd's runtime runs.
func TestPersistctlDoctorAsksContainerd(t *testing.T) {
	tc := newCase(t, webConfig)
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, dir := range filepath.SplitList(path) {
		for _, bin := range []string{"containerd-shim-persist-v1", "runc"} {
			if _, err := os.Stat(filepath.Join(dir, bin)); err == nil {
				t.Fatalf("%s is in %s: the test must run with neither on persistctl's PATH", bin, dir)
			}
		}
	}
	cmd := exec.Command(filepath.Join(daemon.bin, "persistctl"), "--config", tc.configPath, "doctor", "--address", daemon.address)
	cmd.Env = append(os.Environ(), "PATH="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doctor: %v:\n%s", err, out)
	}
	t.Logf("doctor:\n%s", out)
	runc := strings.TrimPrefix(envOr("RUNC_VERSION", "v1.4.3"), "v")
	mustContain(t, string(out),
		"shim:         ok: containerd runs runtime io.containerd.persist.v1",
		"runc:         ok: "+runc+" (as containerd's runtime reports it)")
}
