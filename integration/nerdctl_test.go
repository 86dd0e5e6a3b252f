package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nerdctlNamespace keeps nerdctl's containers and volumes apart from the
// other tests'. nerdctl cannot hand the shim a config file, so these tests
// run on the config a host without one gets: the embedded default.
const nerdctlNamespace = "persist-nerdctl"

// nerdctl finds a nerdctl binary: $NERDCTL, else the project's shared test
// tools beside the repository. Without one the test is skipped, and says
// so; CI must have one.
func nerdctl(t *testing.T) string {
	t.Helper()
	path := os.Getenv("NERDCTL")
	if path == "" {
		path = filepath.Join(daemon.repo, "..", "shared", "tools", "nerdctl")
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("no nerdctl at %s, and CI is set: set NERDCTL to a nerdctl binary", path)
		}
		t.Skipf("SKIPPED: no nerdctl at %s (set NERDCTL to run the nerdctl tests)", path)
	}
	return path
}

// TestNerdctl runs the README's nerdctl commands: an immutable container,
// and a machine container named with --name whose state a new container of
// the same name finds.
func TestNerdctl(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	bin := nerdctl(t)
	dataRoot := t.TempDir()
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"--address", daemon.address, "--namespace", nerdctlNamespace, "--data-root", dataRoot}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	persistctl := func(args ...string) (string, error) {
		out, err := exec.Command(filepath.Join(daemon.bin, "persistctl"), append([]string{"-n", nerdctlNamespace}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := ctr(nerdctlNamespace, "images", "import", filepath.Join(daemon.dir, "images", "image1.tar")); err != nil {
		t.Fatalf("import: %v: %s", err, out)
	}
	t.Cleanup(func() {
		run("rm", "-f", "pg1")
		if out, err := persistctl("volumes", "rm", "pg1"); err != nil && !strings.Contains(out, "does not exist") {
			t.Errorf("remove volume pg1: %v: %s", err, out)
		}
		assertDefaultStateClean(t, nerdctlNamespace)
	})
	base := []string{"run", "--network", "none", "--runtime", runtimeName}

	out, err := run(append(base, "--rm", image1, "sh", "-c", "touch /x; echo tmp-ok > /tmp/y && cat /tmp/y")...)
	if err != nil {
		t.Fatalf("immutable run: %v: %s", err, out)
	}
	mustContain(t, out, "Read-only file system", "tmp-ok")

	machine := append(base, "--name", "pg1", "--annotation", "persist.containerd.io/class=vm", image1)
	if out, err := run(append(machine, "sh", "-c", "echo kept > /root/state && sync")...); err != nil {
		t.Fatalf("machine run: %v: %s", err, out)
	}
	if out, err := run("rm", "pg1"); err != nil {
		t.Fatalf("rm pg1: %v: %s", err, out)
	}
	out, err = run(append(append(base[:1:1], "--rm"), append(machine[1:], "cat", "/root/state")...)...)
	// nerdctl may log a line of its own beside the container's output.
	if err != nil || !containsLine(out, "kept") || strings.Contains(out, "No such file") {
		t.Fatalf("a new container named pg1 reads %q, %v; want the kept state", out, err)
	}
	ls, err := persistctl("volumes", "ls")
	if err != nil || !containsLine(ls, nerdctlNamespace, "pg1") {
		t.Errorf("volumes ls does not show pg1: %v:\n%s", err, ls)
	}
}

// assertDefaultStateClean fails the test if the embedded default's state
// dir holds anything of namespace ns, or anything is mounted under it.
func assertDefaultStateClean(t *testing.T, ns string) {
	t.Helper()
	const stateDir = "/var/lib/containerd-persist"
	drainSpares(t, stateDir)
	for _, e := range leftoversIn(stateDir, ns) {
		t.Errorf("left in %s: %s", stateDir, e)
	}
	for _, m := range mountsUnder(stateDir) {
		t.Errorf("left mounted: %s", m)
	}
	locks, _ := filepath.Glob(filepath.Join(stateDir, "volumes", ".locks", ns, "*"))
	for _, l := range locks {
		t.Errorf("left a volume lock: %s", l)
	}
}
