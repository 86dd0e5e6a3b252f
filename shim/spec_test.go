package shim

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// specWithEverything is a spec with fields the shim never looks at,
// including one that runtime-spec does not know and values with <, > and &.
const specWithEverything = `{
  "ociVersion": "1.3.0",
  "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "a && b > c"], "env": ["PATH=/bin"], "cwd": "/",
              "capabilities": {"bounding": ["CAP_KILL"]}, "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]},
  "root": {"path": "rootfs"},
  "hostname": "c1",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
    {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
  ],
  "hooks": {"createRuntime": [{"path": "/bin/hook", "args": ["hook", "<x>"]}]},
  "annotations": {"persist.containerd.io/class": "web", "note": "a<b>&c"},
  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}],
            "resources": {"memory": {"limit": 1048576}}, "cgroupsPath": "/default/c1", "maskedPaths": ["/proc/kcore"]},
  "x-vendor": {"future": [1, 2.50, "three"], "nested": {"z": null}}
}`

func TestParseSpecDecodesWhatTheShimReads(t *testing.T) {
	s, err := parseSpec([]byte(specWithEverything))
	if err != nil {
		t.Fatal(err)
	}
	if s.Annotations["note"] != "a<b>&c" || s.Root == nil || s.Root.Path != "rootfs" || len(s.Mounts) != 2 || s.Mounts[1].Destination != "/tmp" {
		t.Errorf("decoded annotations %v, root %+v, mounts %+v", s.Annotations, s.Root, s.Mounts)
	}
	want := []specs.LinuxNamespace{{Type: "pid"}, {Type: "mount"}, {Type: "network", Path: "/proc/1/ns/net"}}
	if s.Linux == nil || !reflect.DeepEqual(s.Linux.Namespaces, want) {
		t.Errorf("decoded linux %+v, want its namespaces %v", s.Linux, want)
	}
	if s.Process != nil || s.Hooks != nil || s.Hostname != "" {
		t.Errorf("decoded fields the shim does not read: process %v, hooks %v, hostname %q", s.Process, s.Hooks, s.Hostname)
	}
}

// TestWriteSpecKeepsOtherFields: what the shim changes is written, and every
// other field, known to runtime-spec or not, comes back as it was.
func TestWriteSpecKeepsOtherFields(t *testing.T) {
	bundle := t.TempDir()
	mustT(t, os.WriteFile(filepath.Join(bundle, specFile), []byte(specWithEverything), 0o600))
	s, err := readSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	s.Root.Readonly = true
	addMount(s.Spec, specs.Mount{Destination: "/tmp", Type: "bind", Source: "/state/scratch/0", Options: []string{"rbind", "rw"}})
	mustT(t, writeSpec(bundle, s))

	out, err := os.ReadFile(filepath.Join(bundle, specFile))
	mustT(t, err)
	var before, after map[string]json.RawMessage
	mustT(t, json.Unmarshal([]byte(specWithEverything), &before))
	mustT(t, json.Unmarshal(out, &after))
	if len(after) != len(before) {
		t.Errorf("fields %d after writing, %d before", len(after), len(before))
	}
	for name, raw := range before {
		if name == "root" || name == "mounts" {
			continue
		}
		var compact bytes.Buffer
		mustT(t, json.Compact(&compact, raw))
		if !bytes.Equal(after[name], compact.Bytes()) {
			t.Errorf("field %s changed:\n%s\nwant\n%s", name, after[name], compact.Bytes())
		}
	}
	var full specs.Spec
	mustT(t, json.Unmarshal(out, &full))
	if full.Root == nil || !full.Root.Readonly || full.Root.Path != "rootfs" {
		t.Errorf("root written %+v, want rootfs read-only", full.Root)
	}
	if len(full.Mounts) != 2 || full.Mounts[1].Source != "/state/scratch/0" || full.Mounts[0].Destination != "/proc" {
		t.Errorf("mounts written %+v, want /proc and the scratch bind", full.Mounts)
	}
}

// TestWriteSpecUnchanged: a spec the shim did not change is written back
// equal to what was read, with no root or mounts added where none were.
func TestWriteSpecUnchanged(t *testing.T) {
	for _, in := range []string{specWithEverything, `{"ociVersion": "1.3.0", "process": {"args": ["true"]}}`} {
		s, err := parseSpec([]byte(in))
		mustT(t, err)
		out, err := s.marshal()
		mustT(t, err)
		var a, b any
		mustT(t, json.Unmarshal([]byte(in), &a))
		mustT(t, json.Unmarshal(out, &b))
		if !reflect.DeepEqual(a, b) {
			t.Errorf("written\n%s\nwant the same as\n%s", out, in)
		}
	}
}

// TestWriteSpecOnlyChanged: a spec whose root and mounts the shim left as
// they were is not written again; a change to either is.
func TestWriteSpecOnlyChanged(t *testing.T) {
	for name, change := range map[string]func(s *bundleSpec){
		"nothing":        nil,
		"root read-only": func(s *bundleSpec) { s.Root.Readonly = true },
		"a mount added":  func(s *bundleSpec) { addMount(s.Spec, specs.Mount{Destination: "/data", Type: "bind", Source: "/v"}) },
		"a mount option": func(s *bundleSpec) { s.Mounts[0].Options[0] = "nodev" },
	} {
		t.Run(name, func(t *testing.T) {
			bundle := t.TempDir()
			path := filepath.Join(bundle, specFile)
			mustT(t, os.WriteFile(path, []byte(specWithEverything), 0o600))
			before, err := os.Stat(path)
			mustT(t, err)
			s, err := readSpec(bundle)
			mustT(t, err)
			if change != nil {
				change(s)
			}
			mustT(t, writeSpec(bundle, s))
			after, err := os.Stat(path)
			mustT(t, err)
			if written := !os.SameFile(before, after); written != (change != nil) {
				t.Errorf("spec written: %v, want %v", written, change != nil)
			}
		})
	}
}

func TestParseSpecRefusesBadSpecs(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `{"mounts": {}}`, `{"root": "rootfs"}`, `{"annotations": {"a": 1}}`, `{"linux": {"namespaces": "pid"}}`} {
		if _, err := parseSpec([]byte(in)); err == nil {
			t.Errorf("parseSpec(%q) took it", in)
		}
	}
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
