package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	criNamespace = "k8s.io" // CRI keeps everything in this containerd namespace
	pauseImage   = "docker.io/library/persist-pause:1"
)

// criDaemon is a second private containerd with the CRI plugin on, and
// crictl to drive it. The shared test daemon has CRI off.
type criDaemon struct {
	t      *testing.T
	root   string // holds everything below, and the test's persist configs
	dir    string // containerd's root, state, sockets, config, log
	sock   string
	crictl string
	ids    []string // pods and containers run, checked for leftovers
}

// TestCRI runs pods through CRI runtime handlers of the shim: a handler
// whose options name a config file (ConfigPath) and one whose options are
// the config itself (sent as ConfigBody).
func TestCRI(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	d := startCRI(t)

	t.Run("machine pod keeps its root across re-create", func(t *testing.T) {
		testCRIMachine(t, d)
	})
	t.Run("immutable pod from an inline config", func(t *testing.T) {
		testCRIImmutable(t, d)
	})
	t.Run("tenants never share volumes", func(t *testing.T) {
		testCRITenants(t, d)
	})
	t.Run("a re-created container of a StatefulSet pod finds its root", func(t *testing.T) {
		testCRIStatefulSet(t, d)
	})
}

// Config of the ConfigPath handler. Class vm is the embedded default's
// machine class: its volume is named by default, after the pod and the
// container, so a new pod of the same name and namespace finds it. Class
// vmtemplate names it by a template that gives one name for two pods of
// different namespaces.
const criFileConfig = `default_class = "web"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "memory"
size = "8MiB"

[classes.vm]
mode = "machine"
selectable = true
backend = "local"

[classes.vmtemplate]
mode = "machine"
selectable = true
backend = "local"
name = "{k8s.namespace}-{k8s.pod}-{k8s.container}"
`

func testCRIMachine(t *testing.T, d *criDaemon) {
	volumes := filepath.Join(d.root, "file", "volumes")
	state := filepath.Join(d.root, "file", "state")
	pod := map[string]any{
		"metadata":    map[string]any{"name": "db", "namespace": "team", "uid": "db-1"},
		"annotations": map[string]string{"persist.containerd.io/class": "vm"},
	}
	// The class goes on the container: containerd passes pod annotations to
	// the pod's sandbox (pause) container too, which the shim then gives the
	// same class and volume.
	ctr := map[string]any{"metadata": map[string]any{"name": "main"}}
	podID, ctrID := d.runPod(t, "persist", pod, ctr)
	d.mustExec(t, ctrID, "sh", "-c", "echo kept > /root/state && sync")
	if d.shimOf(t, podID) != d.shimOf(t, ctrID) {
		t.Error("the sandbox and its container have different shims: want one shim per pod")
	}
	// The volume is tenant team's, named after the pod and the container.
	if _, err := os.Stat(filepath.Join(volumes, criNamespace, "@team", "db_main", "fs", "upper", "root", "state")); err != nil {
		t.Errorf("the root layer is not in volume db_main of tenant team: %v", err)
	}
	t.Logf("sandbox container: %s", d.storageOf(t, podID, state))
	if vols := dirNames(filepath.Join(volumes, criNamespace, "@team")); strings.Join(vols, " ") != "db_main" {
		t.Errorf("volumes %v, want only db_main: the sandbox must not hold one", vols)
	}
	d.removePod(t, podID)
	d.assertClean(t)

	pod["metadata"] = map[string]any{"name": "db", "namespace": "team", "uid": "db-2"}
	pod["annotations"] = map[string]string{"persist.containerd.io/class": "vm"}
	_, ctrID = d.runPod(t, "persist", pod, ctr)
	if out := d.mustExec(t, ctrID, "cat", "/root/state", "/etc/image-version"); strings.TrimSpace(out) != "kept\n1" {
		t.Errorf("the re-created pod's container reads %q, want the kept state", out)
	}
	d.removePod(t, "")
	d.assertClean(t)
	if _, err := os.Stat(filepath.Join(volumes, criNamespace, "@team", "db_main")); err != nil {
		t.Errorf("the volume went with the pod: %v", err)
	}
	d.persistctl(t, "volumes", "rm", "--tenant", "team", "db_main")
}

// testCRITenants runs pods of two Kubernetes namespaces with the same
// annotations and names: neither reaches the other's volume, and errors do
// not name the other's containers.
func testCRITenants(t *testing.T, d *criDaemon) {
	vm := map[string]string{"persist.containerd.io/class": "vm", "persist.containerd.io/name": "db"}
	pod := func(ns, name string, annotations map[string]string) map[string]any {
		return map[string]any{"metadata": map[string]any{"name": name, "namespace": ns, "uid": ns + "-" + name}, "annotations": annotations}
	}
	main := func() map[string]any { return map[string]any{"metadata": map[string]any{"name": "main"}} }

	// alice writes a secret and stays up; mallory asks for the same name.
	_, alice := d.runPod(t, "persist", pod("alice", "db", vm), main())
	d.mustExec(t, alice, "sh", "-c", "echo alice-secret > /root/secret && sync")
	mPod, mallory := d.runPod(t, "persist", pod("mallory", "db", vm), main())
	if out, _ := d.exec(mallory, "cat", "/root/secret"); strings.Contains(out, "alice-secret") {
		t.Fatalf("mallory's pod reads alice's secret: %q", out)
	}
	d.mustExec(t, mallory, "sh", "-c", "echo planted > /root/secret && sync")
	d.removePod(t, mPod)
	d.removePod(t, "")
	_, alice = d.runPod(t, "persist", pod("alice", "db", vm), main())
	if out := d.mustExec(t, alice, "cat", "/root/secret"); strings.TrimSpace(out) != "alice-secret" {
		t.Errorf("alice's re-created pod reads %q, want her own secret", out)
	}
	d.removePod(t, "")

	// The old README template gives a-b-c-main for both pods: the tenant
	// keeps them apart.
	tmpl := map[string]string{"persist.containerd.io/class": "vmtemplate"}
	_, ab := d.runPod(t, "persist", pod("a-b", "c", tmpl), main())
	d.mustExec(t, ab, "sh", "-c", "echo from-a-b > /root/who && sync")
	_, a := d.runPod(t, "persist", pod("a", "b-c", tmpl), main())
	if out, _ := d.exec(a, "cat", "/root/who"); strings.Contains(out, "from-a-b") {
		t.Errorf("pod b-c of namespace a reads the volume of pod c of namespace a-b: %q", out)
	}
	d.removePod(t, "")
	d.assertClean(t)

	ls := d.persistctl(t, "volumes", "ls")
	for _, want := range [][]string{{" alice ", " db "}, {" mallory ", " db "}, {" a-b ", "a-b-c-main"}, {" a ", "a-b-c-main"}} {
		if !containsLine(ls, want...) {
			t.Errorf("volumes ls has no line with %q:\n%s", want, ls)
		}
	}
	for _, v := range [][]string{{"alice", "db"}, {"mallory", "db"}, {"a-b", "a-b-c-main"}, {"a", "a-b-c-main"}} {
		d.persistctl(t, "volumes", "rm", "--tenant", v[0], v[1])
	}
}

// testCRIStatefulSet re-creates the container of a StatefulSet's pod db-0
// (a new container ID) with only the class annotation: it finds its root.
// A second container of the pod gets a root of its own, and a pod name of
// Kubernetes' full length works.
func testCRIStatefulSet(t *testing.T, d *criDaemon) {
	pod := map[string]any{
		"metadata":    map[string]any{"name": "db-0", "namespace": "shop", "uid": "db-0-1"},
		"annotations": map[string]string{"persist.containerd.io/class": "vm"},
	}
	podID, first := d.runPod(t, "persist", pod, map[string]any{"metadata": map[string]any{"name": "postgres"}})
	d.mustExec(t, first, "sh", "-c", "echo rows > /root/table && sync")
	side := d.addContainer(t, podID, pod, map[string]any{"metadata": map[string]any{"name": "backup"}})
	if out, _ := d.exec(side, "cat", "/root/table"); strings.Contains(out, "rows") {
		t.Errorf("the pod's second container shares the first one's root: %q", out)
	}
	d.mustRun(t, "rm", "-f", first)
	again := d.addContainer(t, podID, pod, map[string]any{"metadata": map[string]any{"name": "postgres", "attempt": 1}})
	if again == first {
		t.Fatal("the re-created container has the old ID")
	}
	if out := d.mustExec(t, again, "cat", "/root/table"); strings.TrimSpace(out) != "rows" {
		t.Errorf("the re-created container reads %q, want its kept root", out)
	}
	d.removePod(t, "")

	// A pod name of 253 characters: the volume's directory name is derived,
	// its full name kept and shown.
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	pod["metadata"] = map[string]any{"name": long, "namespace": "shop", "uid": "long-1"}
	_, c := d.runPod(t, "persist", pod, map[string]any{"metadata": map[string]any{"name": "main"}})
	d.mustExec(t, c, "sh", "-c", "echo long > /root/x && sync")
	d.removePod(t, "")
	d.assertClean(t)
	ls := d.persistctl(t, "volumes", "ls", "--tenant", "shop")
	for _, name := range []string{"db-0_postgres", "db-0_backup", long + "_main"} {
		if !containsLine(ls, "shop", name) {
			t.Errorf("volumes ls --tenant shop lacks %s:\n%s", name, ls)
		}
		d.persistctl(t, "volumes", "rm", "--tenant", "shop", name)
	}
}

func testCRIImmutable(t *testing.T, d *criDaemon) {
	state := filepath.Join(d.root, "inline", "state")
	// A pod annotation: it reaches the sandbox and the container alike.
	pod := map[string]any{
		"metadata":    map[string]any{"name": "web", "namespace": "team", "uid": "web-1"},
		"annotations": map[string]string{"persist.containerd.io/class": "web"},
	}
	podID, ctrID := d.runPod(t, "persistinline", pod, map[string]any{"metadata": map[string]any{"name": "app"}})
	out, _ := d.exec(ctrID, "sh", "-c", "touch /x; echo exit=$?")
	mustContain(t, out, "Read-only file system", "exit=1")
	out = d.mustExec(t, ctrID, "sh", "-c", "echo mine > /tmp/mine && cat /tmp/mine /tmp/from-image")
	mustContain(t, out, "mine\nimage /tmp file\n")
	// The journal is in the inline config's state dir: that config was used.
	if _, err := os.Stat(filepath.Join(state, "journal", criNamespace, ctrID)); err != nil {
		t.Errorf("no journal of the container in the inline config's state dir: %v", err)
	}
	t.Logf("sandbox container: %s", d.storageOf(t, podID, state))
	d.removePod(t, podID)
	d.assertClean(t)
}

// startCRI starts the CRI daemon with the two handlers, imports the test
// image and a sandbox image, and stops it all when the test ends.
func startCRI(t *testing.T) *criDaemon {
	tools := envOr("TOOLS_DIR", "/var/cache/containerd-persist/tools")
	crictl := filepath.Join(tools, "crictl-"+envOr("CRICTL_VERSION", "v1.37.0"), "crictl")
	if _, err := os.Stat(crictl); err != nil {
		t.Fatalf("crictl not found (%v): run scripts/install-deps.sh", err)
	}
	// Short: shim socket paths under it must fit in 42 characters.
	root, err := os.MkdirTemp("/tmp", "persist-cri-")
	if err != nil {
		t.Fatal(err)
	}
	d := &criDaemon{t: t, root: root, dir: filepath.Join(root, "d"), crictl: crictl}
	d.sock = filepath.Join(d.dir, "containerd.sock")
	t.Cleanup(d.stop)

	fileDir, inlineDir := filepath.Join(root, "file"), filepath.Join(root, "inline")
	// Backends outside the state dir must exist: they may be mountpoints.
	dirs := []string{filepath.Join(fileDir, "volumes"), filepath.Join(inlineDir, "volumes"), filepath.Join(root, "images")}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	configPath := filepath.Join(fileDir, "persist.toml")
	cfg := fmt.Sprintf("version = 1\nstate_dir = %q\n%s", filepath.Join(fileDir, "state"), strings.ReplaceAll(criFileConfig, "{dir}", fileDir))
	if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(root, "cri.toml")
	if err := os.WriteFile(extra, []byte(criConfig(configPath, inlineDir)), 0o600); err != nil {
		t.Fatal(err)
	}

	// crictl reads /etc/crictl.yaml unless told otherwise: keep the host's out.
	if err := os.WriteFile(filepath.Join(root, "crictl.yaml"), []byte("pull-image-on-create: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	pause := filepath.Join(root, "images", "pause.tar")
	if err := command(daemon.repo, "scripts/build-image.sh", pause, pauseImage, "1", "sleep 2147483647"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(daemon.repo, "scripts/containerd.sh"), "start", d.dir)
	cmd.Env = append(os.Environ(), "CRI=1", "CONFIG_EXTRA="+extra, "SHIM_DIR="+daemon.bin, "BIN_DIR="+filepath.Dir(daemon.ctr))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start containerd with CRI: %v: %s", err, out)
	}
	for _, tar := range []string{pause, filepath.Join(daemon.dir, "images", "image1.tar")} {
		cmd := exec.Command(daemon.ctr, "-a", d.sock, "-n", criNamespace, "images", "import", tar)
		cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("import %s: %v: %s", tar, err, out)
		}
	}
	return d
}

// criConfig is the CRI part of the daemon's config: a sandbox image that
// needs no pull, and the two handlers. Annotations reach the shim only if
// the handler lists them.
func criConfig(configPath, inlineDir string) string {
	const runtimes = `plugins."io.containerd.cri.v1.runtime".containerd.runtimes`
	return fmt.Sprintf(`
[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %[1]q

[%[2]s.persist]
  runtime_type = "io.containerd.persist.v1"
  pod_annotations = ["persist.containerd.io/*"]
  [%[2]s.persist.options]
    ConfigPath = %[3]q

[%[2]s.persistinline]
  runtime_type = "io.containerd.persist.v1"
  pod_annotations = ["persist.containerd.io/*"]
  [%[2]s.persistinline.options]
    version = 1
    state_dir = %[4]q
    default_class = "web"
    [%[2]s.persistinline.options.backends.local]
      type = "dir"
      path = %[5]q
    [%[2]s.persistinline.options.classes.web]
      mode = "immutable"
      selectable = true
      [[%[2]s.persistinline.options.classes.web.scratch]]
        path = "/tmp"
        medium = "memory"
        size = "8MiB"
`, pauseImage, runtimes, configPath, filepath.Join(inlineDir, "state"), filepath.Join(inlineDir, "volumes"))
}

// run runs crictl against the daemon and returns its output; crictl's
// warnings on stderr are kept out of it unless it fails.
func (d *criDaemon) run(args ...string) (string, error) {
	cmd := exec.Command(d.crictl, append([]string{
		"--config", filepath.Join(d.root, "crictl.yaml"),
		"--runtime-endpoint", "unix://" + d.sock, "--image-endpoint", "unix://" + d.sock,
		"--timeout", "20s",
	}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crictl %s: %w: %s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func (d *criDaemon) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// runPod runs a host-network pod with the runtime handler and one
// container of the test image in it, and returns their IDs.
func (d *criDaemon) runPod(t *testing.T, handler string, pod, ctr map[string]any) (podID, ctrID string) {
	t.Helper()
	pod["linux"] = map[string]any{"security_context": map[string]any{"namespace_options": map[string]any{"network": 2}}} // NODE
	// PERSIST_SYSTEMD_CGROUP=1: as under a kubelet on the systemd cgroup
	// driver, the pod's cgroup parent is a slice.
	if os.Getenv("PERSIST_SYSTEMD_CGROUP") == "1" {
		pod["linux"].(map[string]any)["cgroup_parent"] = "persisttest.slice"
	}
	ctr["image"] = map[string]string{"image": image1}
	ctr["command"] = []string{"sleep", "2147483647"}
	podFile, ctrFile := d.writeJSON(t, "pod.json", pod), d.writeJSON(t, "container.json", ctr)
	podID = d.mustRun(t, "runp", "--runtime", handler, podFile)
	t.Cleanup(func() {
		if _, err := d.run("rmp", "-f", podID); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Error(err)
		}
	})
	ctrID = d.mustRun(t, "create", podID, ctrFile, podFile)
	d.mustRun(t, "start", ctrID)
	d.ids = append(d.ids, podID, ctrID)
	return podID, ctrID
}

// addContainer creates and starts another container of the test image in
// a running pod.
func (d *criDaemon) addContainer(t *testing.T, podID string, pod, ctr map[string]any) string {
	t.Helper()
	ctr["image"] = map[string]string{"image": image1}
	ctr["command"] = []string{"sleep", "2147483647"}
	podFile, ctrFile := d.writeJSON(t, "pod.json", pod), d.writeJSON(t, "container.json", ctr)
	id := d.mustRun(t, "create", podID, ctrFile, podFile)
	d.mustRun(t, "start", id)
	d.ids = append(d.ids, id)
	return id
}

// persistctl runs the built persistctl in namespace k8s.io with the
// ConfigPath handler's config.
func (d *criDaemon) persistctl(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"--config", filepath.Join(d.root, "file", "persist.toml"), "-n", criNamespace}, args...)
	out, err := exec.Command(filepath.Join(daemon.bin, "persistctl"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("persistctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (d *criDaemon) writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.root, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// exec runs a command in a container and returns its output.
func (d *criDaemon) exec(id string, cmd ...string) (string, error) {
	return d.run(append([]string{"exec", "-s", id}, cmd...)...)
}

func (d *criDaemon) mustExec(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	out, err := d.exec(id, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// removePod stops and removes a pod, or all pods when id is empty.
func (d *criDaemon) removePod(t *testing.T, id string) {
	t.Helper()
	args := []string{"rmp", "-f", id}
	if id == "" {
		args = []string{"rmp", "-f", "-a"}
	}
	d.mustRun(t, args...)
}

// bundle is where containerd keeps a task's bundle.
func (d *criDaemon) bundle(id string) string {
	return filepath.Join(d.dir, "state", "io.containerd.runtime.v2.task", criNamespace, id)
}

// shimOf returns the PID of the shim serving a container: the parent of its
// init process.
func (d *criDaemon) shimOf(t *testing.T, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.bundle(id), "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", atoi(string(b))))
	if err != nil {
		t.Fatal(err)
	}
	return atoi(strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))[1])
}

// storageOf says what storage the shim gave a container: whether it has a
// journal, and what is mounted at /tmp (CRI makes a sandbox's root
// read-only itself).
func (d *criDaemon) storageOf(t *testing.T, id, stateDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.bundle(id), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Mounts []struct{ Destination, Type string }
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	tmp := "none"
	for _, m := range spec.Mounts {
		if m.Destination == "/tmp" {
			tmp = m.Type
		}
	}
	_, err = os.Stat(filepath.Join(stateDir, "journal", criNamespace, id))
	return fmt.Sprintf("journal %v, /tmp mount %s", err == nil, tmp)
}

// assertClean fails the test if anything of the pods is left: a mount or
// loop device under the test's directory (containerd's own included), an
// entry in a state dir, runc's state of a container, or a shim.
func (d *criDaemon) assertClean(t *testing.T) {
	t.Helper()
	for _, sub := range []string{"file", "inline"} {
		drainSpares(t, filepath.Join(d.root, sub, "state"))
	}
	for _, m := range mountsUnder(d.root) {
		t.Errorf("left mounted: %s", m)
	}
	for _, l := range loopsUnder(d.root) {
		t.Errorf("left a loop device: %s", l)
	}
	for _, sub := range []string{"file", "inline"} {
		for _, e := range leftoversIn(filepath.Join(d.root, sub, "state"), criNamespace) {
			t.Errorf("left in the state dir: %s", e)
		}
	}
	// runc's root is host-wide: the shim gets no runc options under CRI.
	for _, id := range d.ids {
		if _, err := os.Stat(filepath.Join("/run/containerd/runc", criNamespace, id)); err == nil {
			t.Errorf("runc state left: %s", id)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for pids := d.shims(); len(pids) > 0; pids = d.shims() {
		if time.Now().After(deadline) {
			t.Errorf("shims still running after their pods were removed: %v", pids)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shims lists the PIDs of shims started by this daemon.
func (d *criDaemon) shims() []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if strings.HasSuffix(args[0], "containerd-shim-persist-v1") && strings.Contains(string(b), "\x00"+d.sock+"\x00") {
			pids = append(pids, atoi(strings.Split(p, "/")[2]))
		}
	}
	return pids
}

// stop removes what pods are left, stops the daemon by its PID, and
// unmounts and removes the test's directory. The daemon's log is printed
// when the test failed.
func (d *criDaemon) stop() {
	t := d.t
	if _, err := os.Stat(d.sock); err == nil {
		if _, err := d.run("rmp", "-f", "-a"); err != nil {
			t.Error(err)
		}
	}
	if err := command(daemon.repo, "scripts/containerd.sh", "stop", d.dir); err != nil {
		t.Errorf("stop the CRI containerd: %v", err)
	}
	// A shim that outlived its pod would keep its mounts busy.
	for _, pid := range d.shims() {
		t.Errorf("shim %d outlived the CRI containerd; killing it", pid)
		unix.Kill(pid, unix.SIGKILL)
	}
	if t.Failed() {
		if log, err := os.ReadFile(filepath.Join(d.dir, "containerd.log")); err == nil {
			t.Logf("--- CRI containerd log ---\n%s", log)
		}
	}
	unmountUnder(d.root)
	if err := os.RemoveAll(d.root); err != nil {
		t.Error(err)
	}
}

// dirNames lists the names in dir.
func dirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
