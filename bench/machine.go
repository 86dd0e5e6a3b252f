package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// machine says what the figures were measured on.
type machine struct {
	OS         string `json:"os"`
	Kernel     string `json:"kernel"`
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	VM         bool   `json:"vm"`
	MemoryMiB  int    `json:"memory_mib"`
	Cgroup     string `json:"cgroup"`
	Containerd string `json:"containerd"`
	Runc       string `json:"runc"`
	Go         string `json:"go"`
	WorkFS     string `json:"work_fs"` // filesystem of the state dir and backends
}

func describeMachine(e *env) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	m.OS = keyOf("/etc/os-release", "PRETTY_NAME=", func(v string) string { return strings.Trim(v, `"`) })
	m.CPU = keyOf("/proc/cpuinfo", "model name", func(v string) string { return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")) })
	m.VM = keyOf("/proc/cpuinfo", "flags", func(v string) string {
		if strings.Contains(v, " hypervisor") {
			return "yes"
		}
		return ""
	}) != ""
	if v := keyOf("/proc/meminfo", "MemTotal:", strings.TrimSpace); v != "" {
		var kib int
		for _, c := range strings.TrimSuffix(v, " kB") {
			kib = kib*10 + int(c-'0')
		}
		m.MemoryMiB = kib / 1024
	}
	m.Cgroup = cgroupVersion()
	m.Containerd = firstLine(output(filepath.Join(e.daemon.Tools.Containerd, "containerd"), "--version"))
	m.Runc = firstLine(output(filepath.Join(e.daemon.Tools.Runc, "runc"), "--version"))
	m.WorkFS = fsType(e.dir)
	return m
}

func keyOf(path, prefix string, f func(string) string) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer fh.Close()
	s := bufio.NewScanner(fh)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), prefix); ok {
			return f(v)
		}
	}
	return ""
}

func cgroupVersion() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) != nil {
		return "unknown"
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2"
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		return "v1 (hybrid)"
	}
	return "v1"
}

func fsType(path string) string {
	var st unix.Statfs_t
	if unix.Statfs(path, &st) != nil {
		return "unknown"
	}
	switch st.Type {
	case unix.EXT4_SUPER_MAGIC:
		return "ext4"
	case unix.XFS_SUPER_MAGIC:
		return "xfs"
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlay"
	}
	return "other"
}

func output(name string, args ...string) string {
	out, _ := exec.Command(name, args...).Output()
	return string(out)
}
