package integration

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/containerdtest"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
)

// tcase is one test's world: its config, state dir and backends, and the
// containers it made, which are deleted when it ends.
type tcase struct {
	t          *testing.T
	dir        string // holds the state dir and the backends
	stateDir   string
	configPath string
	namespace  string
	runtime    string // runtimeName, or fpRuntimeName for failpoints
	containers map[string]bool
	ownMounts  []string // mounted by the test itself: not leaks
}

// newCase makes a test's world with a config whose state dir and backends
// live in a fresh directory. body is the config after state_dir; it may
// use {dir} for that directory.
func newCase(t *testing.T, body string) *tcase {
	t.Helper()
	testenv.NeedRoot(t)
	tc := &tcase{t: t, dir: t.TempDir(), namespace: namespace, runtime: runtimeName, containers: map[string]bool{}}
	tc.stateDir = filepath.Join(tc.dir, "state")
	if body != "" {
		tc.configPath = filepath.Join(tc.dir, "persist.toml")
		cfg := fmt.Sprintf("version = 1\nstate_dir = %q\n%s", tc.stateDir, strings.ReplaceAll(body, "{dir}", tc.dir))
		if err := os.WriteFile(tc.configPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Registered after TempDir, so it runs first: containers are deleted and
	// leftovers unmounted before the directory is removed.
	t.Cleanup(tc.cleanup)
	return tc
}

// ctr runs ctr against the test daemon in namespace ns.
func ctr(ns string, args ...string) (string, error) { return daemon.CtrOutput(ns, args...) }

// runArgs are the ctr run arguments for a container of this test.
func (tc *tcase) runArgs(id, image string, annotations []string, cmd []string, detach bool) []string {
	args := []string{"run", "--runtime", tc.runtime}
	if detach {
		args = append(args, "-d")
	} else {
		args = append(args, "--rm")
	}
	if tc.configPath != "" {
		args = append(args, "--runtime-config-path", tc.configPath)
	}
	// PERSIST_SYSTEMD_CGROUP=1: runc's systemd cgroup driver (SystemdCgroup =
	// true), which the shim takes from a cgroup path of systemd's form.
	if os.Getenv("PERSIST_SYSTEMD_CGROUP") == "1" {
		args = append(args, "--cgroup", "system.slice:"+tc.namespace+":"+id)
	}
	for _, a := range annotations {
		args = append(args, "--annotation", a)
	}
	tc.containers[id] = true
	return append(append(args, image, id), cmd...)
}

// run runs a container to its end and returns its output.
func (tc *tcase) run(id, image string, annotations []string, cmd ...string) (string, error) {
	return ctr(tc.namespace, tc.runArgs(id, image, annotations, cmd, false)...)
}

// mustRun is run that fails the test on error.
func (tc *tcase) mustRun(id, image string, annotations []string, cmd ...string) string {
	tc.t.Helper()
	out, err := tc.run(id, image, annotations, cmd...)
	if err != nil {
		tc.t.Fatalf("run %s: %v: %s", id, err, out)
	}
	return out
}

// start starts a container in the background.
func (tc *tcase) start(id, image string, annotations []string, cmd ...string) (string, error) {
	return ctr(tc.namespace, tc.runArgs(id, image, annotations, cmd, true)...)
}

// remove kills and deletes a container and its task.
func (tc *tcase) remove(id string) error {
	ctr(tc.namespace, "task", "kill", "-s", "SIGKILL", id)
	for range 50 {
		out, err := ctr(tc.namespace, "task", "rm", "-f", id)
		if err == nil || strings.Contains(out, "not found") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := ctr(tc.namespace, "containers", "rm", id)
	if err != nil && !strings.Contains(out, "not found") {
		return fmt.Errorf("remove container %s: %v: %s", id, err, out)
	}
	delete(tc.containers, id)
	return nil
}

// initPID returns the PID of a container's init process, which runc wrote
// into the bundle.
func (tc *tcase) initPID(id string) int {
	tc.t.Helper()
	b, err := os.ReadFile(filepath.Join(daemon.dir, "state/io.containerd.runtime.v2.task", tc.namespace, id, "init.pid"))
	if err != nil {
		tc.t.Fatal(err)
	}
	return atoi(string(b))
}

// shimPID returns the PID of the shim serving a container: the parent of
// the container's init process.
func (tc *tcase) shimPID(id string) int {
	tc.t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", tc.initPID(id)))
	if err != nil {
		tc.t.Fatal(err)
	}
	// Fields after the command name, which ends with the last ")".
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return atoi(fields[1])
}

// alive reports whether pid runs; a zombie is not alive.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return fields[0] != "Z"
}

// persistctl runs the built persistctl with this test's config.
func (tc *tcase) persistctl(args ...string) (string, error) {
	if tc.configPath != "" {
		args = append([]string{"--config", tc.configPath}, args...)
	}
	out, err := exec.Command(filepath.Join(daemon.bin, "persistctl"), args...).CombinedOutput()
	return string(out), err
}

// killShim kills a container's shim with SIGKILL and waits until containerd
// has cleaned up after it.
func (tc *tcase) killShim(id string) {
	tc.t.Helper()
	pid := tc.shimPID(id)
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		tc.t.Fatal(err)
	}
	journal := filepath.Join(tc.stateDir, "journal", tc.namespace, id)
	tc.eventually("containerd to clean up after the killed shim of "+id, func() bool {
		_, err := os.Stat(journal)
		return os.IsNotExist(err)
	})
}

// eventually waits up to 15 s for cond, then fails the test. It bounds a
// wait for asynchronous cleanup; it is not a measure of speed.
func (tc *tcase) eventually(what string, cond func() bool) {
	tc.t.Helper()
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	tc.t.Fatalf("timed out waiting for %s", what)
}

func (tc *tcase) cleanup() {
	ids := make([]string, 0, len(tc.containers))
	for id := range tc.containers {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := tc.remove(id); err != nil {
			tc.t.Error(err)
		}
	}
	tc.assertClean()
	unmountUnder(tc.dir)
}

// mountTmpfs mounts a tmpfs of size bytes at dir for the test.
func (tc *tcase) mountTmpfs(dir string, size int) {
	tc.t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tc.t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		tc.t.Fatal(err)
	}
	tc.ownMounts = append(tc.ownMounts, dir)
}

// assertClean fails the test if anything of its containers is left: a mount
// or loop device under its directory, or a journal, lock, scratch or mount
// entry in its state dir (empty per-namespace directories may stay).
func (tc *tcase) assertClean() {
	tc.t.Helper()
	drainSpares(tc.t, tc.stateDir)
	for _, m := range mountsUnder(tc.dir) {
		if !slices.Contains(tc.ownMounts, m) {
			tc.t.Errorf("left mounted: %s", m)
		}
	}
	for _, l := range loopsUnder(tc.dir) {
		tc.t.Errorf("left a loop device: %s", l)
	}
	for _, e := range leftoversIn(tc.stateDir, tc.namespace) {
		tc.t.Errorf("left in the state dir: %s", e)
	}
	// Volume locks live in the backends, beside the volumes.
	backendLocks, _ := filepath.Glob(filepath.Join(tc.dir, "*", ".locks", tc.namespace))
	for _, dir := range backendLocks {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				tc.t.Errorf("left a volume lock: %s", p)
			}
			return nil
		})
	}
}

// drainSpares drains the spare disk scratch filesystems that released
// containers left in stateDir for the next one: they are kept on purpose,
// and what the drain leaves is then a leftover like any other.
func drainSpares(t *testing.T, stateDir string) {
	t.Helper()
	if err := (overlay.Spares{Dir: state.Dir(stateDir).Spares(), Mounter: host.Linux{}}).Drain(); err != nil {
		t.Errorf("drain the spare scratch filesystems: %v", err)
	}
}

// leftoversIn lists what a state dir holds of containers of a namespace,
// and its trash: a released scratch image is unlinked there right after
// the delete returns, so the trash is given a few seconds to empty.
func leftoversIn(stateDir, namespace string) []string {
	trash := filepath.Join(stateDir, "trash")
	var left []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		entries, _ := os.ReadDir(trash)
		if len(entries) == 0 || time.Now().After(deadline) {
			for _, e := range entries {
				left = append(left, filepath.Join(trash, e.Name()))
			}
			break
		}
	}
	for _, sub := range []string{"journal", "locks", "scratch", "mounts"} {
		root := filepath.Join(stateDir, sub, namespace)
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && p != root {
				left = append(left, p)
			}
			return nil
		})
	}
	return left
}

// mountsUnder lists what is mounted at or under dir; an error reading the
// mounts is listed as such.
func mountsUnder(dir string) []string {
	ms, err := containerdtest.MountsUnder(dir)
	if err != nil {
		return []string{err.Error()}
	}
	return ms
}

// loopsUnder lists loop devices whose backing file is under dir.
// loopsUnder lists the loop devices backed by files under dir. An
// autoclear loop device goes with its last unmount, but since Linux 5.19 the
// kernel detaches it from a work queue a moment later: a device still there
// is looked at again for up to 10 s before it counts as left.
func loopsUnder(dir string) []string {
	loops := containerdtest.LoopsUnder(dir)
	for end := time.Now().Add(10 * time.Second); len(loops) > 0 && time.Now().Before(end); loops = containerdtest.LoopsUnder(dir) {
		time.Sleep(20 * time.Millisecond)
	}
	return loops
}

// unmountUnder unmounts, deepest first and by path, whatever is mounted
// under dir, so that removing dir cannot reach into a mounted filesystem.
func unmountUnder(dir string) {
	if err := containerdtest.UnmountAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "unmount under %s: %v\n", dir, err)
	}
}

// annotations for picking a class and a name.
func class(name string) string   { return "persist.containerd.io/class=" + name }
func volName(name string) string { return "persist.containerd.io/name=" + name }

func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
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
