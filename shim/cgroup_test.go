package shim

import (
	"testing"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestRuncOptionsCgroupDriver(t *testing.T) {
	explicit, err := typeurl.MarshalAnyToProto(&options.Options{BinaryName: "runc", SystemdCgroup: false})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		runc        *anypb.Any
		cgroupsPath string
		want        proto.Message // nil: no options
	}{
		{"ctr default path", nil, "/persist-test/c1", nil},
		{"no path", nil, "", nil},
		{"relative cgroupfs path", nil, "kubepods/besteffort/pod1/c1", nil},
		{"CRI under a systemd parent", nil, "kubepods-besteffort-pod1.slice:cri-containerd:c1", &options.Options{SystemdCgroup: true}},
		{"ctr --cgroup", nil, "machine.slice:foo:deadbeef", &options.Options{SystemdCgroup: true}},
		{"default slice", nil, ":persist:c1", &options.Options{SystemdCgroup: true}},
		{"colons in a cgroupfs path", nil, "/a:b:c", nil},
		{"not a slice", nil, "foo:bar:baz", nil},
		{"two parts", nil, "system.slice:c1", nil},
		{"runc's own options decide", explicit, "system.slice:persist:c1", &options.Options{BinaryName: "runc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runcOptions(tt.runc, tt.cgroupsPath)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if got != nil {
					t.Fatalf("options = %v, want none", got)
				}
				return
			}
			if got == nil {
				t.Fatal("no options, want runc's")
			}
			v, err := typeurl.UnmarshalAny(got)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(v.(proto.Message), tt.want) {
				t.Errorf("options = %v, want %v", v, tt.want)
			}
		})
	}
}

func TestParseSpecCgroupsPath(t *testing.T) {
	s, err := parseSpec([]byte(`{"linux":{"cgroupsPath":"system.slice:persist:c1","namespaces":[{"type":"mount"}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux == nil || s.Linux.CgroupsPath != "system.slice:persist:c1" {
		t.Fatalf("linux = %+v, want the cgroups path read", s.Linux)
	}
}
