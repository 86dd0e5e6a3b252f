package shim

import (
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
)

// runc mounts in spec order: a mount under a class path that comes before
// the class's mount there is hidden by it.
func TestAddMountKeepsNestedMountsVisible(t *testing.T) {
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/tmp/.X11-unix", Type: "bind", Source: "/tmp/.X11-unix"},
		{Destination: "/var/lib/postgresql/certs", Type: "bind", Source: "/run/secrets/pg"},
	}}
	addMount(spec, specs.Mount{Destination: "/var/lib/postgresql", Type: "bind", Source: "/srv/v/fs/data"})
	addMount(spec, specs.Mount{Destination: "/tmp", Type: "overlay"})
	pos := map[string]int{}
	for i, m := range spec.Mounts {
		pos[m.Destination] = i
	}
	for _, nested := range [][2]string{{"/tmp", "/tmp/.X11-unix"}, {"/var/lib/postgresql", "/var/lib/postgresql/certs"}} {
		if pos[nested[1]] < pos[nested[0]] {
			t.Errorf("%s is mounted before %s, which hides it: %v", nested[1], nested[0], spec.Mounts)
		}
	}
}

func TestUnderForeignMount(t *testing.T) {
	spec := &specs.Spec{Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc"},
		{Destination: "/run", Type: "tmpfs"},
		{Destination: "/var/cache/", Type: "bind", Source: "/host/emptydir"},
		{Destination: "/etc/hosts", Type: "bind", Source: "/host/hosts"},
	}}
	for path, refused := range map[string]bool{
		"/tmp": false, "/run/app": false, "/var/cache": false, "/var/cache/app": true, "/etc/hosts/x": true, "/proc/x": true,
	} {
		if err := underForeignMount(spec, path); (err != nil) != refused {
			t.Errorf("underForeignMount(%s) = %v, want refused %v", path, err, refused)
		}
	}
}
