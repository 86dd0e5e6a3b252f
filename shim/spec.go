package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// specFile is the OCI spec in a bundle. pkg/oci is not imported for it: its
// package init alone costs the shim ~0.7 ms on every exec.
const specFile = "config.json"

// bundleSpec is a container's OCI spec as the shim reads and writes it. Only
// what the shim looks at is decoded: the annotations, the root, the mounts
// and the Linux namespaces. Every top-level field stays as read, so writing
// the spec back changes the root and the mounts and keeps everything else
// exactly; a spec whose root and mounts are as read (a machine root without
// volumes) is not written at all. Decoding and encoding the whole spec in a
// fresh process, every type of it for the first time, took 1.4-2 ms of the
// container's create; this takes 0.35 ms, before Create (see preload).
type bundleSpec struct {
	*specs.Spec // the decoded fields only; Linux holds Namespaces and CgroupsPath
	fields      map[string]json.RawMessage
	read        specs.Spec // Root and Mounts as read, to tell a change
}

// readSpec reads the spec of the bundle.
func readSpec(bundle string) (*bundleSpec, error) {
	path := filepath.Join(bundle, specFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return s, nil
}

func parseSpec(b []byte) (*bundleSpec, error) {
	s := &bundleSpec{Spec: &specs.Spec{}}
	if err := json.Unmarshal(b, &s.fields); err != nil {
		return nil, err
	}
	if s.fields == nil {
		return nil, errors.New("the spec is null")
	}
	var linux struct {
		Namespaces  []specs.LinuxNamespace `json:"namespaces,omitempty"`
		CgroupsPath string                 `json:"cgroupsPath,omitempty"`
	}
	for _, f := range []struct {
		name string
		into any
	}{
		{"annotations", &s.Annotations},
		{"root", &s.Root},
		{"mounts", &s.Mounts},
		{"linux", &linux},
	} {
		if raw, ok := s.fields[f.name]; ok {
			if err := json.Unmarshal(raw, f.into); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	if _, ok := s.fields["linux"]; ok {
		s.Linux = &specs.Linux{Namespaces: linux.Namespaces, CgroupsPath: linux.CgroupsPath}
	}
	for _, m := range s.Mounts {
		m.Options = slices.Clone(m.Options)
		s.read.Mounts = append(s.read.Mounts, m)
	}
	if s.Root != nil {
		root := *s.Root
		s.read.Root = &root
	}
	return s, nil
}

// changed says whether the root or the mounts changed since they were
// read.
func (s *bundleSpec) changed() bool {
	return !reflect.DeepEqual(s.Root, s.read.Root) || !reflect.DeepEqual(s.Mounts, s.read.Mounts)
}

// marshal encodes the spec: its root and mounts as they are now, every other
// field as read (compacted, fields sorted by name).
func (s *bundleSpec) marshal() ([]byte, error) {
	fields := maps.Clone(s.fields)
	if err := setField(fields, "root", s.Root, s.Root == nil); err != nil {
		return nil, err
	}
	if err := setField(fields, "mounts", s.Mounts, s.Mounts == nil); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // values as read, not with <, > and & escaped
	if err := enc.Encode(fields); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// setField encodes v as field name; a nil v is left out if the spec had no
// such field.
func setField(fields map[string]json.RawMessage, name string, v any, isNil bool) error {
	if _, had := fields[name]; !had && isNil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fields[name] = b
	return nil
}

// writeSpec replaces the spec of the bundle, if the shim changed it.
func writeSpec(bundle string, s *bundleSpec) error {
	if !s.changed() {
		return nil
	}
	b, err := s.marshal()
	if err != nil {
		return err
	}
	path := filepath.Join(bundle, specFile)
	tmp := path + ".persist"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
