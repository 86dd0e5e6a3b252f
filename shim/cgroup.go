package shim

import (
	"strings"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"
)

// runcOptions are the options handed to runc's task service for a container
// whose spec asks for cgroupsPath. runc's own options, when the task has
// them, decide. A task that carries ours has none of runc's: neither ctr
// (--runc-systemd-cgroup is for io.containerd.runc.v2 only) nor CRI (a
// handler's options table becomes runtimeoptions for any other runtime type)
// can say SystemdCgroup for this runtime. Then the cgroup path's form
// decides, as CRI itself decides it from the pod's cgroup parent: runc's
// systemd driver takes only "slice:prefix:name", which its cgroupfs driver
// would take as a directory named with colons. Without this, a host whose
// kubelet uses the systemd driver (most cgroup v2 hosts) gives runc systemd
// paths to make as cgroupfs directories, beside systemd's tree.
func runcOptions(runc *anypb.Any, cgroupsPath string) (*anypb.Any, error) {
	if runc != nil || !isSystemdCgroupsPath(cgroupsPath) {
		return runc, nil
	}
	return typeurl.MarshalAnyToProto(&options.Options{SystemdCgroup: true})
}

// isSystemdCgroupsPath reports whether p has the form runc's systemd cgroup
// driver takes: "slice:prefix:name", the slice empty or a .slice unit.
func isSystemdCgroupsPath(p string) bool {
	parts := strings.Split(p, ":")
	if len(parts) != 3 || strings.Contains(parts[0], "/") {
		return false
	}
	return parts[0] == "" || strings.HasSuffix(parts[0], ".slice")
}

// cgroupsPath is the spec's linux.cgroupsPath, empty without one.
func (s *bundleSpec) cgroupsPath() string {
	if s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}
