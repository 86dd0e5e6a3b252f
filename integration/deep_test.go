package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/fstree/fstreetest"
)

// deepConfig has a dir backend, which the test puts on a tmpfs (100,000
// levels take seconds there and minutes on a disk filesystem mounted with
// discard), and a loopfile backend with room for thousands of directories.
const deepConfig = `default_class = "vm"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[backends.sized]
type = "loopfile"
path = "{dir}/images"
default_size = "128MiB"

[classes.vm]
mode = "machine"
backend = "local"
selectable = true

[classes.data]
mode = "immutable"
selectable = true
[[classes.data.volumes]]
path = "/var/lib/data"
backend = "sized"
name = "{name}-data"
size = "128MiB"
`

const (
	// deepLevels is what a container builds in seconds
	// (mkdir t && mv d t/ && mv t d in a loop): du, rm and gc must cope.
	deepLevels = 100_000
	// pastPathMaxLevels makes paths ("d/" per level) longer than PATH_MAX,
	// and is as deep as export can go in a test: each tar header holds the
	// whole path.
	pastPathMaxLevels = 5000
	// fewFDs is the RLIMIT_NOFILE persistctl runs with here: far fewer than
	// the levels, so that a tool that holds one per level fails.
	fewFDs = 256
)

// persistctlFewFDs runs the built persistctl with this test's config and at
// most fewFDs descriptors, and fails the test if it fails or prints a line
// longer than a screenful. It logs how long the command took.
func (tc *tcase) persistctlFewFDs(args ...string) string {
	tc.t.Helper()
	argv := append([]string{fmt.Sprintf("--nofile=%d:%d", fewFDs, fewFDs), "--",
		filepath.Join(daemon.bin, "persistctl"), "--config", tc.configPath}, args...)
	start := time.Now()
	b, err := exec.Command("prlimit", argv...).CombinedOutput()
	out := string(b)
	tc.t.Logf("persistctl %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 1000 {
			tc.t.Errorf("persistctl %s printed a line of %d bytes: %s", strings.Join(args, " "), len(line), fstree.Shorten(line))
		}
	}
	if err != nil {
		tc.t.Fatalf("persistctl %s: %v: %s", strings.Join(args, " "), err, fstree.Shorten(out))
	}
	return out
}

// mountImage loop-mounts a detached loopfile volume's image at dir until
// unmount is called (or the test ends): the way to plant a tree in it
// host-side.
func (tc *tcase) mountImage(image, dir string) (unmount func()) {
	tc.t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		tc.t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop,nodev,nosuid", image, dir).CombinedOutput(); err != nil {
		tc.t.Fatalf("mount %s: %v: %s", image, err, out)
	}
	mounted := true
	unmount = func() {
		if !mounted {
			return
		}
		mounted = false
		// mount(8) made the loop device autoclear: it goes with the unmount.
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			tc.t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	}
	tc.t.Cleanup(unmount)
	return unmount
}

// bottomOf finds the file at the bottom of a chain under root, host-side.
func bottomOf(t *testing.T, root string) (path, body string) {
	t.Helper()
	err := fstree.Walk(root, func(e *fstree.Entry) error {
		if e.Name != "f" || e.Stat.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		fd, err := unix.Openat(e.Dir, e.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		b := make([]byte, 64)
		n, err := unix.Read(fd, b)
		path, body = e.Path(), string(b[:max(n, 0)])
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %.300v", root, err)
	}
	return path, body
}

func gone(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
}

// Volumes written by containers, then given trees deeper than any
// descriptor limit and paths longer than PATH_MAX while detached: persistctl
// du, export, import, rm and gc handle them with few descriptors, and a
// container reads the bottom of an imported one.
func TestDeepTrees(t *testing.T) {
	tc := newCase(t, deepConfig)
	volumes, images := filepath.Join(tc.dir, "volumes"), filepath.Join(tc.dir, "images")
	tc.mountTmpfs(volumes, 4<<30)
	if err := os.Mkdir(images, 0o700); err != nil {
		t.Fatal(err)
	}
	tc.mustRun("deep-vm", image1, []string{class("vm"), volName("deepdir")}, "sh", "-c", "echo kept > /root/state && sync")
	tc.mustRun("deep-db", image1, []string{class("data"), volName("deeploop")}, "sh", "-c", "echo row > /var/lib/data/table && sync")

	// Planted host-side while detached: 100,000 levels in the dir volume,
	// 5,000 (a 10,000-byte path) in the loopfile one.
	start := time.Now()
	dirContent := filepath.Join(volumes, tc.namespace, "deepdir", "fs")
	fstreetest.Chain(t, filepath.Join(dirContent, "upper"), "d", deepLevels, "f", "bottom\n")
	t.Logf("planted %d levels: %v", deepLevels, time.Since(start).Round(time.Millisecond))
	mnt := filepath.Join(tc.dir, "plant")
	unmount := tc.mountImage(filepath.Join(images, tc.namespace, "deeploop-data", "disk.img"), mnt)
	// A volume's mount in a container is its filesystem's data directory.
	if err := os.Mkdir(filepath.Join(mnt, "data", "deep"), 0o755); err != nil {
		t.Fatal(err)
	}
	fstreetest.Chain(t, filepath.Join(mnt, "data", "deep"), "d", pastPathMaxLevels, "f", "bottom\n")
	unmount()

	var du struct {
		Inodes uint64 `json:"inodes"`
	}
	for v, want := range map[string]uint64{"deepdir": deepLevels, "deeploop-data": pastPathMaxLevels} {
		out := tc.persistctlFewFDs("-n", tc.namespace, "volumes", "du", "--json", v)
		if err := json.Unmarshal([]byte(out), &du); err != nil {
			t.Fatalf("du --json %s: %v: %s", v, err, out)
		}
		if du.Inodes < want {
			t.Errorf("du %s counts %d inodes, want at least %d", v, du.Inodes, want)
		}
	}

	// The loopfile volume goes through a tar and back, into each backend.
	archive := filepath.Join(tc.dir, "deep.tar")
	tc.persistctlFewFDs("-n", tc.namespace, "volumes", "export", "deeploop-data", archive)
	tc.persistctlFewFDs("-n", tc.namespace, "volumes", "import", "--backend", "local", "deepcopy", archive)
	tc.persistctlFewFDs("-n", tc.namespace, "volumes", "import", "--backend", "sized", "deepcopy2-data", archive)
	path, body := bottomOf(t, filepath.Join(volumes, tc.namespace, "deepcopy", "fs"))
	if want := "data/deep/" + strings.Repeat("d/", pastPathMaxLevels) + "f"; path != want || body != "bottom\n" {
		t.Errorf("the imported bottom file is %s holding %q, want %d bytes of path holding \"bottom\\n\"", fstree.Shorten(path), body, len(want))
	}
	// cd by relative steps of 1,000 levels, each well under PATH_MAX (busybox
	// finds its way back up after each, which costs the depth).
	out := tc.mustRun("deep-db2", image1, []string{class("data"), volName("deepcopy2")}, "sh", "-c",
		fmt.Sprintf(`cat /var/lib/data/table && p=d && i=1 && while [ $i -lt 1000 ]; do p=$p/d; i=$((i+1)); done &&
cd /var/lib/data/deep && for i in $(seq %d); do cd -P "$p" || exit 1; done && cat f`, pastPathMaxLevels/1000))
	mustContain(t, out, "row", "bottom")

	tc.persistctlFewFDs("-n", tc.namespace, "volumes", "rm", "deepdir", "deeploop-data", "deepcopy", "deepcopy2-data")
	gone(t, filepath.Join(volumes, tc.namespace, "deepdir"), filepath.Join(images, tc.namespace, "deeploop-data"),
		filepath.Join(volumes, tc.namespace, "deepcopy"), filepath.Join(images, tc.namespace, "deepcopy2-data"))

	// A removal cut short leaves a hidden directory: gc finishes it.
	half := filepath.Join(volumes, tc.namespace, ".removing-deepgc-0123456789ab")
	if err := os.MkdirAll(filepath.Join(half, "fs"), 0o700); err != nil {
		t.Fatal(err)
	}
	fstreetest.Chain(t, filepath.Join(half, "fs"), "d", deepLevels, "f", "bottom\n")
	out = tc.persistctlFewFDs("gc")
	if !containsLine(out, "volume", half, "removed") {
		t.Errorf("gc did not remove %s:\n%s", half, out)
	}
	gone(t, half)
	for _, backend := range []string{volumes, images} {
		entries, err := os.ReadDir(filepath.Join(backend, tc.namespace))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left in %s: %s", backend, e.Name())
		}
	}
}
