package config

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

const (
	defaultStateDir    = "/var/lib/containerd-persist"
	defaultBackendSize = Size(1 << 30)
	defaultVolumeName  = "{name}"
)

// validName reports whether s may name a class or a backend: they end up
// in paths and messages, so they are kept plain, 1 to 63 of a-z 0-9 _ -,
// starting with a letter or digit. It accepts what
// ^[a-z0-9][a-z0-9_-]{0,62}$ does, checked by hand: a regexp compiled at
// package init costs every exec of the shim, three per container.
func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		lowerOrDigit := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !lowerOrDigit && (i == 0 || c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// checker collects problems. bad remembers keys that already have one, so
// a size that failed to parse is not also reported as missing.
type checker struct {
	idx      *lineIndex
	problems []Problem
	bad      map[string]bool
}

func (ch *checker) add(key, format string, args ...any) {
	ch.bad[key] = true
	ch.problems = append(ch.problems, Problem{Line: ch.idx.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (ch *checker) size(key string, t sizeText) Size {
	if !t.set {
		return 0
	}
	n, err := ParseSize(t.text)
	if err != nil {
		ch.add(key, "%v", err)
	}
	return n
}

// check fills defaults and reports every problem to ch. Maps are walked in
// sorted order so the same file always gives the same message.
func (c *Config) check(ch *checker) {
	if c.Version != 1 && !ch.bad["version"] {
		ch.add("version", "version %d is not supported; this release reads version = 1", c.Version)
	}
	if c.StateDir == "" {
		c.StateDir = defaultStateDir
	}
	const stateWant = "an absolute directory on the host, like " + defaultStateDir
	stateOK := checkPath(ch, "state_dir", c.StateDir, stateWant) && checkHostDir(ch, "state_dir", c.StateDir, defaultStateDir)

	c.checkCluster(ch)
	var placed []*Backend // backends whose path is usable
	for _, name := range slices.Sorted(maps.Keys(c.Backends)) {
		if c.checkBackend(ch, c.Backends[name]) {
			placed = append(placed, c.Backends[name])
		}
	}
	c.checkPlaces(ch, placed, stateOK)
	for _, name := range slices.Sorted(maps.Keys(c.Classes)) {
		c.checkClass(ch, c.Classes[name])
	}

	switch _, ok := c.Classes[c.DefaultClass]; {
	case c.DefaultClass == "":
		ch.add("default_class", "default_class is required: name the class containers get when they ask for none")
	case !ok:
		ch.add("default_class", "class %q is not defined; %s", c.DefaultClass, c.choices("classes", c.DefaultClass))
	}
}

// checkBackend checks and defaults a backend. It says whether its path is
// usable.
func (c *Config) checkBackend(ch *checker, b *Backend) bool {
	key := "backends." + b.Name
	checkName(ch, key, "backend", b.Name)
	c.checkClusterBackend(ch, key, b)
	switch b.Type {
	case BackendDir:
		if b.DefaultSize != 0 {
			ch.add(key+".default_size", "only loopfile backends have a size; remove default_size or set type = \"loopfile\"")
		}
		if b.Overcommit {
			ch.add(key+".overcommit", "only loopfile backends can overcommit: a dir backend reserves nothing; remove overcommit or set type = \"loopfile\"")
		}
	case BackendLoopfile:
		checkImageSize(ch, key+".default_size", "default_size", b.DefaultSize, MinVolumeSize)
		if b.DefaultSize == 0 && !ch.bad[key+".default_size"] {
			b.DefaultSize = defaultBackendSize
		}
	case "":
		ch.add(key+".type", "type is required: use \"dir\" or \"loopfile\"")
	default:
		ch.add(key+".type", "type %q is not a backend type: use \"dir\" or \"loopfile\"", b.Type)
	}
	const want = "/srv/persist"
	return checkPath(ch, key+".path", b.Path, "an absolute directory on the host, like "+want) && checkHostDir(ch, key+".path", b.Path, want)
}

func (c *Config) checkClass(ch *checker, cl *Class) {
	key := "classes." + cl.Name
	checkName(ch, key, "class", cl.Name)
	switch cl.Mode {
	case ModeMachine:
		c.checkRootVolume(ch, key, cl)
	case ModeImmutable:
		const why = "only machine classes have a root volume; remove %s or set mode = \"machine\""
		if cl.Backend != "" {
			ch.add(key+".backend", why, "backend")
		}
		if cl.VolumeName != "" {
			ch.add(key+".name", why, "name")
		}
		if cl.Size != 0 {
			ch.add(key+".size", why, "size")
		}
		if cl.OnImageChange != "" {
			ch.add(key+".on_image_change", why, "on_image_change")
		}
	case "":
		ch.add(key+".mode", "mode is required: use \"immutable\" or \"machine\"")
	default:
		ch.add(key+".mode", "mode %q is not a mode: use \"immutable\" or \"machine\"", cl.Mode)
	}

	var paths []keyedPath
	for i := range cl.Scratch {
		s := &cl.Scratch[i]
		skey := fmt.Sprintf("%s.scratch[%d]", key, i)
		if checkPath(ch, skey+".path", s.Path, "an absolute directory in the container, like /tmp") && checkContainerDir(ch, skey+".path", s.Path) {
			paths = append(paths, keyedPath{skey + ".path", s.Path})
		}
		switch s.Medium {
		case "":
			s.Medium = MediumMemory
		case MediumMemory, MediumDisk:
		default:
			ch.add(skey+".medium", "medium %q is not a medium: use \"memory\" (tmpfs) or \"disk\" (an image in state_dir)", s.Medium)
		}
		if s.Size == 0 && !ch.bad[skey+".size"] {
			ch.add(skey+".size", "size is required: scratch space is always limited, like size = \"64MiB\"")
		}
		if s.Medium == MediumDisk {
			checkImageSize(ch, skey+".size", "disk scratch", s.Size, MinDiskSize)
		} else {
			checkMaxSize(ch, skey+".size", "scratch", s.Size)
		}
	}
	for i := range cl.Volumes {
		v := &cl.Volumes[i]
		vkey := fmt.Sprintf("%s.volumes[%d]", key, i)
		if checkPath(ch, vkey+".path", v.Path, "an absolute directory in the container, like /var/lib/postgresql") && checkContainerDir(ch, vkey+".path", v.Path) {
			paths = append(paths, keyedPath{vkey + ".path", v.Path})
		}
		if v.Name == "" {
			ch.add(vkey+".name", "name is required: a template like \"{name}-data\"")
		} else {
			checkVolumeName(ch, vkey+".name", v.Name)
		}
		b := c.checkBackendRef(ch, vkey+".backend", v.Backend)
		switch {
		case b == nil:
		case b.Type == BackendLoopfile:
			checkImageSize(ch, vkey+".size", "a loopfile volume", v.Size, MinVolumeSize)
			if v.Size == 0 && !ch.bad[vkey+".size"] {
				v.Size = b.DefaultSize
			}
		case b.Type == BackendDir:
			if v.Size != 0 {
				ch.add(vkey+".size", "backend %q is a dir backend, which has no size limit; remove size or use a loopfile backend", b.Name)
			}
		}
		if b != nil && v.Shared && b.Type == BackendLoopfile {
			ch.add(vkey+".shared", "shared volumes need a dir backend, and %q is a loopfile backend; remove shared or use a dir backend", b.Name)
		}
	}
	checkOverlaps(ch, paths)
}

// checkRootVolume checks and defaults the root-layer volume of a machine class.
func (c *Config) checkRootVolume(ch *checker, key string, cl *Class) {
	if cl.VolumeName == "" {
		cl.VolumeName = defaultVolumeName
	}
	checkVolumeName(ch, key+".name", cl.VolumeName)
	switch cl.OnImageChange {
	case "":
		cl.OnImageChange = ImageKeep
	case ImageKeep, ImageRefuse:
	default:
		ch.add(key+".on_image_change", "on_image_change %q is not allowed: use \"keep\" or \"refuse\"", cl.OnImageChange)
	}
	b := c.checkBackendRef(ch, key+".backend", cl.Backend)
	switch {
	case b == nil:
	case b.Type == BackendLoopfile:
		checkImageSize(ch, key+".size", "a loopfile volume", cl.Size, MinVolumeSize)
		if cl.Size == 0 && !ch.bad[key+".size"] {
			cl.Size = b.DefaultSize
		}
	case b.Type == BackendDir:
		if cl.Size != 0 {
			ch.add(key+".size", "backend %q is a dir backend, which has no size limit; remove size or use a loopfile backend", b.Name)
		}
	}
}

// checkBackendRef returns the backend a class or volume names, or nil after
// reporting why there is none.
func (c *Config) checkBackendRef(ch *checker, key, name string) *Backend {
	if name == "" {
		ch.add(key, "backend is required: %s", c.choices("backends", ""))
		return nil
	}
	b, ok := c.Backends[name]
	if !ok {
		ch.add(key, "backend %q is not defined; %s", name, c.choices("backends", name))
		return nil
	}
	return b
}

// choices tells the operator what they could have written instead.
func (c *Config) choices(table, name string) string {
	var names []string
	if table == "classes" {
		names = c.ClassNames()
	} else {
		names = slices.Sorted(maps.Keys(c.Backends))
	}
	hint := ""
	if name != "" {
		hint = fmt.Sprintf("define [%s.%s]", table, name)
	} else {
		hint = fmt.Sprintf("define one under [%s]", table)
	}
	if len(names) == 0 {
		return hint
	}
	return fmt.Sprintf("use one of %s, or %s", strings.Join(names, ", "), hint)
}

func checkName(ch *checker, key, what, name string) {
	if !validName(name) {
		ch.add(key, "%s name %q is not allowed: use up to 63 of a-z, 0-9, _ and -, starting with a letter or digit", what, name)
	}
}

// checkPath reports a path that is missing, relative, too long, unclean or
// "/". Clean paths are required rather than cleaned, so the path that is
// mounted is the path the operator wrote. It says whether the path is
// usable.
func checkPath(ch *checker, key, p, want string) bool {
	switch {
	case p == "":
		ch.add(key, "path is required: %s", want)
	case !checkPathLen(ch, key, p):
	case !path.IsAbs(p):
		ch.add(key, "%q is not absolute: use %s", p, want)
	case path.Clean(p) != p:
		ch.add(key, "%q is not a clean path: write it as %q", p, path.Clean(p))
	case p == "/":
		ch.add(key, "\"/\" cannot be used: use %s", want)
	case strings.ContainsAny(p, ",:"):
		// Paths go into overlay mount options, where , and : separate.
		ch.add(key, "%q holds a comma or colon, which mount options cannot carry: rename the directory", p)
	default:
		return true
	}
	return false
}

// checkVolumeName checks a name template. The text around placeholders must
// already be valid in a volume name, or every expansion would be refused at
// container create; catching it here gives the line.
func checkVolumeName(ch *checker, key, template string) {
	err := walkTemplate(template, func(literal, _ string) error {
		if strings.Trim(literal, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" || strings.Contains(literal, "..") {
			return fmt.Errorf("name template %q: %q cannot be part of a volume name; use a-z, 0-9, ., _ and - around the placeholders", template, literal)
		}
		return nil
	})
	if err != nil {
		ch.add(key, "%v", err)
	}
}

type keyedPath struct{ key, path string }

// checkOverlaps refuses two mounts of one class at the same path or one
// under the other: the inner one would be hidden or would pin the outer.
func checkOverlaps(ch *checker, paths []keyedPath) {
	for i, a := range paths {
		for _, b := range paths[:i] {
			if under(a.path, b.path) || under(b.path, a.path) {
				ch.add(a.key, "%q overlaps %s (%q); give each scratch and volume its own directory, neither under the other", a.path, b.key, b.path)
			}
		}
	}
}

// under reports whether p is dir or inside it. Both are clean and absolute.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}
