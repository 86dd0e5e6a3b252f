package config

import (
	"path"
	"strings"
)

// Sizes that an image or a mount can be made with. They are checked when a
// config is read, so that a create never fails on them with mkfs's output.
const (
	// MinDiskSize is the smallest disk scratch: with the options the host
	// package formats images with, mkfs.ext4 1.47 cannot make a filesystem
	// below 104KiB ("Illegal inode number while writing reserved inodes").
	MinDiskSize Size = 104 << 10
	// MinVolumeSize is the smallest loopfile volume: below 2MiB mkfs.ext4
	// leaves out the journal ("Filesystem too small for a journal"), and a
	// volume must come back consistent after a crash.
	MinVolumeSize Size = 2 << 20
	// MaxSize is the largest size of anything. A file on ext4, the usual
	// host filesystem, ends below 16TiB; half of that is more than a
	// single-host volume or scratch area is ever meant to be, and a size
	// past it is a typo, not a plan.
	MaxSize Size = 8 << 40
)

// Path limits of Linux (PATH_MAX counts the terminating NUL).
const (
	maxPathLen = 4096 - 1
	maxNameLen = 255
)

// StateSubdirs are the directories the shim keeps in the state dir: setup
// journals, scratch areas, volume locks, loop mounts of volumes, image
// templates, setup timings, the trash of released scratch images, spare
// scratch filesystems and the cluster agent's socket. A backend inside one of them would mix volumes with the
// shim's own files; one directly under the state dir is fine.
var StateSubdirs = []string{"journal", "scratch", "locks", "mounts", "templates", "metrics", "trash", "spare", "cluster"}

// systemDirs are host directories that neither the state dir nor a backend
// may be: the shim would fill them with its files, gc would walk them, and
// a mistake would reach the host's own files.
var systemDirs = []string{
	"/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys",
	"/run", "/var", "/var/lib", "/tmp", "/root", "/home",
}

// kernelDirs hold the kernel's own filesystems: nothing at or under them is
// a place for images or volumes on the host, and in a container runc sets
// them up itself, so a scratch or volume mounted there breaks every
// container ("open /dev/null: permission denied").
var kernelDirs = []string{"/dev", "/proc", "/sys"}

// checkImageSize reports a size an ext4 image cannot have. what names it
// in the message, like "disk scratch".
func checkImageSize(ch *checker, key, what string, size, min Size) {
	switch {
	case size == 0 || ch.bad[key]:
	case size < min:
		ch.add(key, "%s of %s is too small for an ext4 image: use at least %s", what, size, min)
	case size > MaxSize:
		ch.add(key, "%s of %s is too large: sizes go up to %s", what, size, MaxSize)
	}
}

// checkMaxSize reports a size over MaxSize.
func checkMaxSize(ch *checker, key, what string, size Size) {
	if size > MaxSize && !ch.bad[key] {
		ch.add(key, "%s of %s is too large: sizes go up to %s", what, size, MaxSize)
	}
}

// checkPathLen reports a path that Linux cannot open: longer than PATH_MAX,
// or with a component longer than NAME_MAX (ENAMETOOLONG at every create).
func checkPathLen(ch *checker, key, p string) bool {
	if len(p) > maxPathLen {
		ch.add(key, "path is %d bytes long: Linux paths are at most %d bytes (PATH_MAX); use a shorter path", len(p), maxPathLen)
		return false
	}
	for _, name := range strings.Split(p, "/") {
		if len(name) > maxNameLen {
			ch.add(key, "a component of the path is %d bytes long (%.20q...): names are at most %d bytes (NAME_MAX); use a shorter name", len(name), name, maxNameLen)
			return false
		}
	}
	return true
}

// checkHostDir reports a state dir or backend path that is a system
// directory or under one of the kernel's.
func checkHostDir(ch *checker, key, p, want string) bool {
	for _, d := range kernelDirs {
		if under(p, d) {
			ch.add(key, "%q is at or under %s, which the kernel provides: use %s", p, d, want)
			return false
		}
	}
	for _, d := range systemDirs {
		if p == d {
			ch.add(key, "%q is a system directory: use a directory of its own, like %s", p, want)
			return false
		}
	}
	return true
}

// checkContainerDir reports a scratch or volume path at or under a
// directory that the runtime sets up in every container.
func checkContainerDir(ch *checker, key, p string) bool {
	for _, d := range kernelDirs {
		if under(p, d) {
			ch.add(key, "%q is at or under %s, which the runtime sets up in every container: mount scratch and volumes elsewhere", p, d)
			return false
		}
	}
	return true
}

// checkPlaces refuses backends and a state dir that share directories:
// two backends on one path or one inside another (a volume would be two
// volumes, of two sizes and two lock scopes), a backend that is the state
// dir or inside one of its own directories, and a state dir inside a
// backend. ok holds the backends whose path is usable.
func (c *Config) checkPlaces(ch *checker, ok []*Backend, stateOK bool) {
	inside := func(in, out *Backend) {
		ch.add("backends."+in.Name+".path", "%q is inside backend %s (%q): give each backend a directory of its own, neither inside the other", in.Path, out.Name, out.Path)
	}
	state := c.StateDir
	for i, b := range ok {
		key := "backends." + b.Name + ".path"
		for _, a := range ok[:i] {
			switch {
			case a.Path == b.Path:
				ch.add(key, "%q is also the path of backend %s: give each backend a directory of its own", b.Path, a.Name)
			case under(b.Path, a.Path):
				inside(b, a)
			case under(a.Path, b.Path):
				inside(a, b)
			}
		}
		if !stateOK {
			continue
		}
		switch {
		case b.Path == state:
			ch.add(key, "%q is the state dir: put the backend in a directory of its own, like %q", b.Path, path.Join(state, "volumes"))
		case under(state, b.Path):
			// Only a state_dir written in the file can be here: every
			// parent of the default one is a system directory.
			ch.add("state_dir", "the state dir %q is inside backend %s (%q): keep the state dir and backends apart", state, b.Name, b.Path)
		default:
			for _, sub := range StateSubdirs {
				if d := path.Join(state, sub); under(b.Path, d) {
					ch.add(key, "%q is inside the state dir's %s directory (%q), which the shim manages: put the backend directly under state_dir, like %q, or elsewhere",
						b.Path, sub, d, path.Join(state, "volumes"))
				}
			}
		}
	}
}
