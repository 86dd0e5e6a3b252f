package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// specFile is the OCI spec in a bundle. pkg/oci is not imported for it: its
// package init alone costs the shim ~0.7 ms on every exec.
const specFile = "config.json"

// bundleSpec is a container's OCI spec as the shim reads and writes it. Only
// what the shim looks at is decoded: the annotations, the root, the mounts
// and the Linux namespaces. Every top-level field stays as read, so writing
// the spec back changes the root and the mounts and keeps everything else
// exactly. Decoding the whole spec in a fresh process, every type of it for
// the first time, took ~1 ms of the container's create.
type bundleSpec struct {
	*specs.Spec // the decoded fields only; Linux holds only Namespaces
	fields      map[string]json.RawMessage
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
		Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`
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
		s.Linux = &specs.Linux{Namespaces: linux.Namespaces}
	}
	return s, nil
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

// writeSpec replaces the spec of the bundle.
func writeSpec(bundle string, s *bundleSpec) error {
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
