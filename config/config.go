package config

import (
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// SystemPath is where the shim and persistctl look for a config when the
// runtime options name none.
const SystemPath = "/etc/containerd/persist.toml"

// DefaultTOML is the config used when there is no other, and what
// persistctl config default prints.
//
//go:embed default.toml
var DefaultTOML []byte

// Source names for configs that are not files.
const (
	sourceRuntime = "runtime options"
	sourceDefault = "embedded default"
)

// Mode is how a class treats the container's root filesystem.
type Mode string

const (
	ModeImmutable Mode = "immutable" // read-only root, scratch overlays
	ModeMachine   Mode = "machine"   // writable root kept in a named volume
)

// Medium is what backs a scratch path.
type Medium string

const (
	MediumMemory Medium = "memory" // tmpfs
	MediumDisk   Medium = "disk"   // sparse image in state_dir, loop-mounted
)

// BackendType is how a backend stores volumes.
type BackendType string

const (
	BackendDir      BackendType = "dir"      // a directory per volume, no size limit
	BackendLoopfile BackendType = "loopfile" // an ext4 image per volume, size enforced
)

// OnImageChange is what a machine class does when a container reattaches a
// root volume that was made from another image.
type OnImageChange string

const (
	ImageKeep   OnImageChange = "keep"   // carry on with the old root layer
	ImageRefuse OnImageChange = "refuse" // fail the create
)

// Config is a parsed, validated config with defaults filled in. It marshals
// back to TOML that parses to the same Config: empty optional fields are
// omitted, since a written zero size or empty backend would be refused.
type Config struct {
	Version      int                 `toml:"version"`
	StateDir     string              `toml:"state_dir"`
	DefaultClass string              `toml:"default_class"`
	Backends     map[string]*Backend `toml:"backends,omitempty"`
	Classes      map[string]*Class   `toml:"classes"`
	Cluster      *Cluster            `toml:"cluster,omitempty"` // none: every backend is host-local
	// Source is where the config was read from: a file path,
	// "runtime options", or "embedded default".
	Source string `toml:"-"`
}

// Backend is where volumes live.
type Backend struct {
	Name        string      `toml:"-"` // the key under [backends]
	Type        BackendType `toml:"type"`
	Path        string      `toml:"path"`
	DefaultSize Size        `toml:"default_size,omitempty"` // loopfile only; 1GiB when unset
	// Overcommit makes a loopfile backend's images sparse: their space is
	// not reserved when they are made, so more can be promised than the
	// backend holds, and a full backend shows up in containers as I/O
	// errors. Off by default; loopfile only.
	Overcommit bool `toml:"overcommit,omitempty"`
	// Cluster marks a loopfile backend on storage that every node mounts:
	// its volumes are locked cluster-wide in [cluster]'s etcd.
	Cluster bool `toml:"cluster,omitempty"`
}

// Class is a storage policy a container is created with.
type Class struct {
	Name       string `toml:"-"` // the key under [classes]
	Mode       Mode   `toml:"mode"`
	Selectable bool   `toml:"selectable"` // may be picked by annotation
	// The fields up to OnImageChange describe a machine class's root volume.
	Backend       string        `toml:"backend,omitempty"`
	VolumeName    string        `toml:"name,omitempty"`            // template; "{name}" when unset
	Size          Size          `toml:"size,omitempty"`            // loopfile backends; backend default_size when unset
	OnImageChange OnImageChange `toml:"on_image_change,omitempty"` // "keep" when unset
	Scratch       []Scratch     `toml:"scratch,omitempty"`
	Volumes       []Volume      `toml:"volumes,omitempty"`
}

// Scratch is writable space at Path that starts with the image's content
// there and is destroyed with the container.
type Scratch struct {
	Path   string `toml:"path"`
	Medium Medium `toml:"medium"` // "memory" when unset
	Size   Size   `toml:"size"`   // required
}

// Volume is a named persistent volume mounted at Path.
type Volume struct {
	Path    string `toml:"path"`
	Backend string `toml:"backend"`
	Name    string `toml:"name"`             // template, required
	Size    Size   `toml:"size,omitempty"`   // loopfile backends; backend default_size when unset
	Shared  bool   `toml:"shared,omitempty"` // may be attached to several live containers; dir backends only
}

// Parse decodes data strictly (unknown keys are errors), fills defaults and
// validates. Source names data in errors. A config with problems is refused
// whole with an *Error listing all of them.
func Parse(data []byte, source string) (*Config, error) {
	idx := indexLines(data)
	f, err := decode(data)
	if err != nil {
		return nil, &Error{Source: source, Problems: decodeProblems(err, idx)}
	}
	ch := &checker{idx: idx, bad: map[string]bool{}}
	c := f.config(ch)
	c.Source = source
	c.check(ch)
	if len(ch.problems) > 0 {
		slices.SortStableFunc(ch.problems, func(a, b Problem) int { return a.Line - b.Line })
		return nil, &Error{Source: source, Problems: ch.problems}
	}
	return c, nil
}

// Default returns a fresh copy of the embedded default config.
func Default() *Config {
	c, err := Parse(DefaultTOML, sourceDefault)
	if err != nil {
		panic(err) // TestDefault keeps this from shipping
	}
	return c
}

// Load finds the config: the inline runtimeBody if set, else the file at
// runtimePath if set (it must exist), else systemPath if it exists, else the
// embedded default. The runtime options win because each CRI handler may
// carry its own config and default class.
func Load(runtimePath, runtimeBody, systemPath string) (*Config, error) {
	if runtimeBody != "" {
		return Parse([]byte(runtimeBody), sourceRuntime)
	}
	if runtimePath != "" {
		data, err := readPrivate(runtimePath)
		if err != nil {
			return nil, fmt.Errorf("read config %s named in the runtime options: %w", runtimePath, err)
		}
		return Parse(data, runtimePath)
	}
	if systemPath != "" {
		data, err := readPrivate(systemPath)
		switch {
		case err == nil:
			return Parse(data, systemPath)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read config %s: %w", systemPath, err)
		}
	}
	return Default(), nil
}

// Class returns the class called name.
func (c *Config) Class(name string) (*Class, bool) {
	cl, ok := c.Classes[name]
	return cl, ok
}

// Backend returns the backend called name.
func (c *Config) Backend(name string) (*Backend, bool) {
	b, ok := c.Backends[name]
	return b, ok
}

// ClassNames returns the class names, sorted.
func (c *Config) ClassNames() []string {
	names := make([]string, 0, len(c.Classes))
	for name := range c.Classes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
