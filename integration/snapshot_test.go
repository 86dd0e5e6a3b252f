package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// snapshotConfig has one loopfile backend, on a host filesystem that the
// test makes, a class with a data volume and a machine class with one.
const snapshotConfig = `default_class = "db"

[backends.sized]
type = "loopfile"
path = "{dir}/images"
default_size = "64MiB"
overcommit = %v

[classes.db]
mode = "immutable"
selectable = true
[[classes.db.volumes]]
path = "/data"
backend = "sized"
name = "{name}-data"
size = "64MiB"

[classes.vm]
mode = "machine"
backend = "sized"
name = "{name}-root"
selectable = true
[[classes.vm.volumes]]
path = "/data"
backend = "sized"
name = "{name}-data"
size = "32MiB"
`

// hostFilesystems are the backends' filesystems the snapshots are tested
// on: XFS and btrfs share blocks (reflink) on an overcommit backend; ext4
// cannot, and its backend reserves space, so every copy is a copy.
var hostFilesystems = []struct {
	fs         string
	mkfs       []string
	overcommit bool
	method     string // of a snapshot
	restore    string // of a restore
}{
	{"xfs", []string{"mkfs.xfs", "-q", "-f", "-m", "reflink=1"}, true, volumes.MethodReflink, volumes.MethodReflink},
	{"btrfs", []string{"mkfs.btrfs", "-q", "-f"}, true, volumes.MethodReflink, volumes.MethodReflink},
	{"ext4", []string{"mkfs.ext4", "-q", "-F"}, false, volumes.MethodCopy, volumes.MethodReserved},
}

// newFSBackendCase is a case whose backend directory {dir}/images is a
// filesystem made by mkfs on a sparse image outside the case's directory,
// loop-mounted for the test and unmounted after its containers are gone.
func newFSBackendCase(t *testing.T, fs string, mkfs []string, overcommit bool) *tcase {
	t.Helper()
	image := filepath.Join(t.TempDir(), "backend.img")
	var mnt string
	t.Cleanup(func() { // runs after tc.cleanup: cleanups run last first
		if mnt != "" {
			if err := unix.Unmount(mnt, 0); err != nil && !errors.Is(err, unix.EINVAL) {
				t.Errorf("unmount the backend filesystem: %v", err)
			}
		}
	})
	tc := newCase(t, fmt.Sprintf(snapshotConfig, overcommit))
	f, err := os.Create(image)
	if err == nil {
		err = f.Truncate(1 << 30)
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs[0], append(mkfs[1:], image)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s (run scripts/install-deps.sh)", mkfs[0], err, out)
	}
	mnt = filepath.Join(tc.dir, "images")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := (host.Linux{}).Mount(mount.Mount{Type: fs, Source: image, Options: []string{"loop"}}, mnt); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	tc.ownMounts = append(tc.ownMounts, mnt)
	return tc
}

// snapshotJSON runs a snapshot command with --json and decodes it.
func (tc *tcase) snapshotJSON(args ...string) volumes.Snapshot {
	tc.t.Helper()
	out := tc.mustPersistctl(append([]string{"-n", tc.namespace, "volumes", "snapshot"}, append(args, "--json")...)...)
	var snap volumes.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		tc.t.Fatalf("volumes snapshot %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return snap
}

// Write, snapshot, write more, restore: the content is the snapshot's,
// the volume keeps its size, on XFS, btrfs and ext4 backends; a clone is
// attached beside its source; a live snapshot freezes for a time it tells;
// restore of a held volume is refused, naming the holder.
func TestSnapshotRestoreClone(t *testing.T) {
	for _, hf := range hostFilesystems {
		t.Run(hf.fs, func(t *testing.T) {
			tc := newFSBackendCase(t, hf.fs, hf.mkfs, hf.overcommit)
			ann := []string{class("db"), volName("pg")}
			tc.mustRun("w1", image1, ann, "sh", "-c", "echo one > /data/a && dd if=/dev/urandom of=/data/big bs=1M count=20 2>/dev/null && md5sum /data/big > /data/big.sum && sync")
			snap := tc.snapshotJSON("create", "pg-data", "s1")
			if snap.Name != "s1" || snap.Method != hf.method || snap.Live {
				t.Errorf("snapshot = %+v, want s1 by %s, not live", snap, hf.method)
			}
			tc.mustRun("w2", image1, ann, "sh", "-c", "echo two > /data/a && echo new > /data/b && rm /data/big && sync")

			out := tc.mustPersistctl("-n", tc.namespace, "volumes", "inspect", "pg-data")
			mustContain(t, out, "snapshot", "s1")
			restored := tc.snapshotJSON("restore", "pg-data", "s1")
			if restored.Method != hf.restore {
				t.Errorf("restore by %s, want %s", restored.Method, hf.restore)
			}
			out = tc.mustRun("r1", image1, ann, "sh", "-c", "cat /data/a; ls /data/b; md5sum -c /data/big.sum; df -k /data | tail -1")
			mustContain(t, out, "one", "No such file", "/data/big: OK")
			if strings.Contains(out, "two") {
				t.Errorf("the restored volume holds the later write: %s", out)
			}
			// 64 MiB, less what ext4 keeps for itself.
			if f := strings.Fields(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]); len(f) < 2 || atoi(f[1]) < 50<<10 || atoi(f[1]) > 64<<10 {
				t.Errorf("restored volume's size: df says %q, want about 64 MiB", f)
			}

			// A clone attached beside its source, each with its own content.
			var clone volumes.Info
			if err := json.Unmarshal([]byte(tc.mustPersistctl("-n", tc.namespace, "volumes", "clone", "pg-data", "pg2-data", "--json")), &clone); err != nil {
				t.Fatal(err)
			}
			if clone.Name != "pg2-data" || clone.Size != 64<<20 {
				t.Errorf("clone = %+v", clone.Meta)
			}
			if out, err := tc.start("src", image1, ann, "sh", "-c", "echo three > /data/a && sync && sleep 600"); err != nil {
				t.Fatalf("start: %v: %s", err, out)
			}
			out = tc.mustRun("cl", image1, []string{class("db"), volName("pg2")}, "sh", "-c", "cat /data/a; md5sum -c /data/big.sum")
			mustContain(t, out, "one", "/data/big: OK")

			// Live: the source is attached; its filesystem is frozen for
			// the copy and thawed.
			tc.eventually("the container to write", func() bool {
				b, _ := os.ReadFile(filepath.Join(tc.stateDir, "mounts", tc.namespace, "pg-data", "data", "a"))
				return string(b) == "three\n"
			})
			live := tc.snapshotJSON("create", "pg-data", "live")
			if !live.Live || live.Frozen <= 0 || live.Method != hf.method {
				t.Errorf("live snapshot = %+v, want live by %s with a freeze time", live, hf.method)
			}
			out = tc.mustPersistctl("-n", tc.namespace, "volumes", "snapshot", "create", "pg-data", "live2")
			mustContain(t, out, "frozen for")
			out, err := tc.persistctl("-n", tc.namespace, "volumes", "snapshot", "restore", "pg-data", "s1")
			if err == nil || !strings.Contains(out, "src") || !strings.Contains(out, "held") {
				t.Errorf("restore of a held volume: %v: %s; want refused naming container src", err, out)
			}
			if err := tc.remove("src"); err != nil {
				t.Fatal(err)
			}
			tc.snapshotJSON("restore", "pg-data", "live")
			out = tc.mustRun("r2", image1, ann, "cat", "/data/a")
			mustContain(t, out, "three")

			var snaps []volumes.Snapshot
			if err := json.Unmarshal([]byte(tc.mustPersistctl("-n", tc.namespace, "volumes", "snapshot", "ls", "pg-data", "--json")), &snaps); err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 3 || snaps[0].Name != "s1" || snaps[1].Name != "live" || snaps[2].Name != "live2" {
				t.Errorf("snapshot ls = %+v, want s1, live, live2", snaps)
			}
			tc.mustPersistctl("-n", tc.namespace, "volumes", "snapshot", "rm", "pg-data", "live2")
			// A volume goes with its snapshots.
			tc.mustPersistctl("-n", tc.namespace, "volumes", "rm", "pg-data", "pg2-data")
			if left, _ := os.ReadDir(filepath.Join(tc.dir, "images", tc.namespace)); len(left) != 0 {
				t.Errorf("left in the backend: %v", left)
			}
		})
	}
}

// Reset drops a machine volume's root layer: the next container sees the
// image's files again, and the class's data volume keeps its content.
func TestResetMachineVolume(t *testing.T) {
	tc := newFSBackendCase(t, "ext4", []string{"mkfs.ext4", "-q", "-F"}, false)
	ann := []string{class("vm"), volName("node")}
	tc.mustRun("m1", image1, ann, "sh", "-c", "rm /etc/image-version && echo mine > /root/state && echo data > /data/d && sync")
	out := tc.mustRun("m2", image1, ann, "sh", "-c", "ls /etc/image-version; cat /root/state")
	mustContain(t, out, "No such file", "mine")
	tc.snapshotJSON("create", "node-root", "before-reset")

	if out, err := tc.start("m3", image1, ann, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	out, err := tc.persistctl("-n", tc.namespace, "volumes", "reset", "node-root")
	if err == nil || !strings.Contains(out, "m3") {
		t.Errorf("reset of a held volume: %v: %s; want refused naming m3", err, out)
	}
	if err := tc.remove("m3"); err != nil {
		t.Fatal(err)
	}
	out = tc.mustPersistctl("-n", tc.namespace, "volumes", "reset", "node-root")
	mustContain(t, out, "reset volume")
	out = tc.mustRun("m4", image1, ann, "sh", "-c", "cat /etc/image-version; ls /root/state; cat /data/d")
	mustContain(t, out, "No such file", "data")
	// ls writes to stderr, which may come before cat's line.
	if strings.Contains(out, "mine") || !slices.Contains(strings.Split(out, "\n"), "1") {
		t.Errorf("after reset: %s; want the image's /etc/image-version and no /root/state", out)
	}
	// The snapshot taken before the reset brings the layer back.
	tc.snapshotJSON("restore", "node-root", "before-reset")
	out = tc.mustRun("m5", image1, ann, "sh", "-c", "ls /etc/image-version; cat /root/state")
	mustContain(t, out, "No such file", "mine")
}

// killedCopyEnv makes this test binary, run again with it set, a process
// that makes a snapshot or restores one as persistctl does, and kills
// itself with SIGKILL in the middle of the copy.
const killedCopyEnv = "PERSIST_TEST_KILLED_COPY"

func init() {
	if v := os.Getenv(killedCopyEnv); v != "" {
		os.Exit(killedCopy(v))
	}
}

// killedCopy: op|state dir|backend path|namespace|volume|snapshot.
func killedCopy(v string) int {
	p := strings.Split(v, "|")
	s := volumes.Open(state.Dir(p[1]).Volumes(), host.Linux{}, volumes.NewLocks())
	b := volumes.Backend{Name: "sized", Type: volumes.Loopfile, Path: p[2]}
	id, err := volumes.NewID(p[3], "", p[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	o := volumes.CopyOptions{
		Holder: volumes.Holder{Namespace: p[3], Container: "persistctl-killed", Since: time.Now().UTC(), PID: os.Getpid()},
		Progress: func(done, total int64) {
			if done > 0 && done < total {
				unix.Kill(os.Getpid(), unix.SIGKILL)
				select {}
			}
		},
	}
	if p[0] == "create" {
		_, err = s.CreateSnapshot(b, id, p[5], o)
	} else {
		_, err = s.RestoreSnapshot(b, id, p[5], o)
	}
	fmt.Fprintf(os.Stderr, "not killed: %v\n", err)
	return 3
}

// A snapshot create or restore killed in the middle of its copy leaves the
// volume whole; gc removes the half-made copy, and the next attach and
// restore work.
func TestSnapshotKilled(t *testing.T) {
	for _, op := range []string{"create", "restore"} {
		t.Run(op, func(t *testing.T) {
			tc := newFSBackendCase(t, "ext4", []string{"mkfs.ext4", "-q", "-F"}, false)
			ann := []string{class("db"), volName("k")}
			tc.mustRun("k1", image1, ann, "sh", "-c", "echo one > /data/a && dd if=/dev/urandom of=/data/big bs=1M count=24 2>/dev/null && md5sum /data/big > /data/big.sum && sync")
			tc.snapshotJSON("create", "k-data", "s1")
			tc.mustRun("k2", image1, ann, "sh", "-c", "echo two > /data/a && sync")

			snap := "s1"
			if op == "create" {
				snap = "s2"
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), killedCopyEnv+"="+strings.Join([]string{op, tc.stateDir, filepath.Join(tc.dir, "images"), tc.namespace, "k-data", snap}, "|"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the copy = %v, want killed by SIGKILL; stderr: %s", err, stderr.String())
			}

			var found []struct{ Kind, Path string }
			if err := json.Unmarshal([]byte(tc.mustPersistctl("gc", "--dry-run", "--json")), &found); err != nil {
				t.Fatal(err)
			}
			// The half-made copy, and the lock the killed process left.
			if len(found) != 2 || found[0].Kind != "volume" || !strings.HasPrefix(filepath.Base(found[0].Path), ".creating-k-data-") || found[1].Kind != "lock" {
				t.Errorf("gc --dry-run = %+v, want the half-made copy and a lock", found)
			}
			tc.mustPersistctl("gc")
			if out := tc.mustPersistctl("gc"); out != "nothing to remove\n" {
				t.Errorf("a second gc: %s", out)
			}
			out := tc.mustRun("k3", image1, ann, "sh", "-c", "cat /data/a; md5sum -c /data/big.sum")
			mustContain(t, out, "two", "/data/big: OK")
			out = tc.mustPersistctl("-n", tc.namespace, "volumes", "snapshot", "ls", "k-data")
			if strings.Contains(out, "s2") || !strings.Contains(out, "s1") {
				t.Errorf("snapshot ls after the kill: %s; want s1 alone", out)
			}
			tc.snapshotJSON("restore", "k-data", "s1")
			out = tc.mustRun("k4", image1, ann, "cat", "/data/a")
			mustContain(t, out, "one")
		})
	}
}
