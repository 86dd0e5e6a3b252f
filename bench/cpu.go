package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cpuMeter measures the CPU time of what the bench's containerd starts:
// both shims' three processes per container (`shim start`, the daemon,
// `shim delete`) and what they run (runc, mkfs), to the microsecond.
// containerd is moved into a cgroup of its own in the cgroup v2 hierarchy
// (the unified one beside v1), whose cpu.stat counts it and everything it
// starts without any controller; containerd's own time, the sum of its
// threads' (schedstat, in ns), is taken off. The containers' processes
// leave the cgroup as runc puts them in theirs. Wall time on a loaded
// machine cannot resolve 1%; the CPU that a case's shim takes beyond
// runc's can, and where the machine is busy it is what each container
// takes from everything else.
type cpuMeter struct {
	dir    string // the cgroup
	ctdPID int
}

// newCPUMeter moves the containerd of pid into a new cgroup named for the
// bench's directory. nil, with the reason, where there is no cgroup v2
// hierarchy.
func newCPUMeter(pid int, name string) (*cpuMeter, error) {
	root := "/sys/fs/cgroup"
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, err
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		root = "/sys/fs/cgroup/unified" // hybrid
		if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			return nil, errors.New("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
		}
	}
	m := &cpuMeter{dir: filepath.Join(root, name), ctdPID: pid}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(m.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		os.Remove(m.dir)
		return nil, fmt.Errorf("move containerd into %s: %w", m.dir, err)
	}
	return m, nil
}

// usage is the CPU time of the cgroup so far, but containerd's own.
func (m *cpuMeter) usage() (time.Duration, error) {
	ctd, err := threadsCPU(m.ctdPID)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(m.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			return time.Duration(us)*time.Microsecond - ctd, err
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", m.dir)
}

// threadsCPU is the CPU time of the threads of process pid: the first
// field of each one's schedstat, in ns. Go keeps its threads for the
// process's life, so none of containerd's time leaves with an exited one.
func threadsCPU(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat"))
		if err != nil {
			continue // exited meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// settle waits, up to a second, until no process but containerd is left in
// the cgroup alive: a shim exits a little after the client has seen its
// container deleted, and its last CPU belongs to that container, not the
// next.
func (m *cpuMeter) settle() {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if !m.othersAlive() {
			return
		}
	}
}

func (m *cpuMeter) othersAlive() bool {
	b, err := os.ReadFile(filepath.Join(m.dir, "cgroup.procs"))
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == m.ctdPID {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone
		}
		// The state follows the command's closing parenthesis.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue // exited: its CPU time is all counted
		}
		return true
	}
	return false
}

// measure runs fn and returns its CPU time in the cgroup.
func (m *cpuMeter) measure(fn func() error) (time.Duration, error) {
	m.settle()
	before, err := m.usage()
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	m.settle()
	after, err := m.usage()
	return after - before, err
}

// close removes the cgroup once containerd and its shims have left it (at
// their exit); a cgroup still in use is left to the caller's error.
func (m *cpuMeter) close() error {
	var err error
	for range 50 {
		if err = os.Remove(m.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", m.dir, err)
}
