package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// file mirrors Config as it is written, with sizes kept as text. Decoding
// straight into Size would stop at the first bad size; keeping the text lets
// validation report every bad size with the rest of the problems.
// TestFileMirrorsConfig keeps the two in step.
type file struct {
	Version      *int                   `toml:"version"`
	StateDir     string                 `toml:"state_dir"`
	DefaultClass string                 `toml:"default_class"`
	Backends     map[string]fileBackend `toml:"backends"`
	Classes      map[string]fileClass   `toml:"classes"`
	Cluster      *fileCluster           `toml:"cluster"`
}

type fileBackend struct {
	Type        BackendType `toml:"type"`
	Path        string      `toml:"path"`
	DefaultSize sizeText    `toml:"default_size"`
	Overcommit  bool        `toml:"overcommit"`
	Cluster     bool        `toml:"cluster"`
}

type fileClass struct {
	Mode          Mode          `toml:"mode"`
	Selectable    bool          `toml:"selectable"`
	Backend       string        `toml:"backend"`
	VolumeName    string        `toml:"name"`
	Size          sizeText      `toml:"size"`
	OnImageChange OnImageChange `toml:"on_image_change"`
	Scratch       []fileScratch `toml:"scratch"`
	Volumes       []fileVolume  `toml:"volumes"`
}

type fileScratch struct {
	Path   string   `toml:"path"`
	Medium Medium   `toml:"medium"`
	Size   sizeText `toml:"size"`
}

type fileVolume struct {
	Path    string   `toml:"path"`
	Backend string   `toml:"backend"`
	Name    string   `toml:"name"`
	Size    sizeText `toml:"size"`
	Shared  bool     `toml:"shared"`
}

// sizeText is a size as written. go-toml hands it the raw text of strings
// and numbers alike, so size = 1024 and size = "1KiB" both arrive here.
type sizeText struct {
	text string
	set  bool
}

func (t *sizeText) UnmarshalText(b []byte) error {
	t.text, t.set = string(b), true
	return nil
}

func decode(data []byte) (*file, error) {
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	return &f, nil
}

const schemaHint = "see persistctl config default for the schema"

// decodeProblems turns go-toml's errors into problems with a line and key.
func decodeProblems(err error, idx *lineIndex) []Problem {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		problems := make([]Problem, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			line, column := e.Position()
			problems = append(problems, Problem{Line: line, Key: idx.keyAt(line, column, e.Key()), Msg: "unknown key; " + schemaHint})
		}
		return problems
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, column := de.Position()
		p := Problem{Line: line, Msg: strings.TrimPrefix(de.Error(), "toml: ")}
		if len(de.Key()) > 0 {
			p.Key = idx.keyAt(line, column, de.Key())
		}
		if strings.Contains(p.Msg, "cannot decode") {
			// go-toml names Go types here; the operator needs TOML's words.
			p.Msg = "wrong type of value: use " + expectedType(de.Key())
		} else {
			p.Msg = "not valid TOML: " + p.Msg
		}
		return []Problem{p}
	}
	return []Problem{{Msg: fmt.Sprintf("%v; %s", err, schemaHint)}}
}

// expectedType says what a key takes, in TOML's words.
func expectedType(key []string) string {
	last := ""
	if len(key) > 0 {
		last = key[len(key)-1]
	}
	switch {
	case last == "version":
		return "a number, like version = 1"
	case last == "selectable" || last == "shared" || last == "overcommit" || last == "cluster" && len(key) == 3:
		return "true or false"
	case last == "scratch" || last == "volumes":
		return "an array of tables, like [[classes.NAME." + last + "]]"
	case len(key) == 1 && (last == "backends" || last == "classes"),
		len(key) == 2 && (key[0] == "backends" || key[0] == "classes"):
		return "a table, like [" + key[0] + ".NAME]"
	case strings.HasSuffix(last, "size"):
		return "a quoted size, like \"64MiB\""
	}
	return "a quoted string; " + schemaHint
}

// config converts the file to a Config, reporting bad sizes to ch.
func (f *file) config(ch *checker) *Config {
	c := &Config{
		StateDir:     f.StateDir,
		DefaultClass: f.DefaultClass,
		Backends:     make(map[string]*Backend, len(f.Backends)),
		Classes:      make(map[string]*Class, len(f.Classes)),
		Cluster:      f.Cluster.config(ch),
	}
	if f.Version != nil {
		c.Version = *f.Version
	} else {
		ch.add("version", "version = 1 is required; add it at the top of the file")
	}
	for name, fb := range f.Backends {
		key := "backends." + name
		c.Backends[name] = &Backend{
			Name:        name,
			Type:        fb.Type,
			Path:        fb.Path,
			DefaultSize: ch.size(key+".default_size", fb.DefaultSize),
			Overcommit:  fb.Overcommit,
			Cluster:     fb.Cluster,
		}
	}
	for name, fc := range f.Classes {
		key := "classes." + name
		cl := &Class{
			Name:          name,
			Mode:          fc.Mode,
			Selectable:    fc.Selectable,
			Backend:       fc.Backend,
			VolumeName:    fc.VolumeName,
			Size:          ch.size(key+".size", fc.Size),
			OnImageChange: fc.OnImageChange,
		}
		for i, fs := range fc.Scratch {
			cl.Scratch = append(cl.Scratch, Scratch{
				Path:   fs.Path,
				Medium: fs.Medium,
				Size:   ch.size(fmt.Sprintf("%s.scratch[%d].size", key, i), fs.Size),
			})
		}
		for i, fv := range fc.Volumes {
			cl.Volumes = append(cl.Volumes, Volume{
				Path:    fv.Path,
				Backend: fv.Backend,
				Name:    fv.Name,
				Size:    ch.size(fmt.Sprintf("%s.volumes[%d].size", key, i), fv.Size),
				Shared:  fv.Shared,
			})
		}
		c.Classes[name] = cl
	}
	return c
}
