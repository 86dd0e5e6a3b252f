package shim

import (
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func TestReleaseModeOf(t *testing.T) {
	own := &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}}
	joined := &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace, Path: "/proc/42/ns/pid"}}}
	hostPID := &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}
	tests := []struct {
		name    string
		linux   *specs.Linux
		machine bool
		want    releaseMode
	}{
		{"own PID namespace", own, false, releaseBesideDelete},
		{"own PID namespace, machine root", own, true, syncBesideDelete},
		{"another container's PID namespace", joined, false, releaseAfterDelete},
		{"the host's PID namespace", hostPID, false, releaseAfterDelete},
		{"the host's PID namespace, machine root", hostPID, true, releaseAfterDelete},
		{"no Linux section", nil, false, releaseAfterDelete},
	}
	for _, tt := range tests {
		if got := releaseModeOf(&specs.Spec{Linux: tt.linux}, tt.machine); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

const scratchAndVolume = `
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/var/tmp"
medium = "disk"
size = "2MiB"
[[classes.c.volumes]]
path = "/var/lib/db"
backend = "srv"
name = "{name}-db"
`

const machineRoot = `
[classes.c]
mode = "machine"
backend = "srv"
`

// TestReleaseBesideDelete: the storage of a stopped container with a PID
// namespace of its own is released whole beside runc's delete; a machine
// root's volumes are only synced then, and stay held until the release
// after runc's delete; a container without one waits for that release.
func TestReleaseBesideDelete(t *testing.T) {
	ownPID := &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}}}
	tests := []struct {
		name         string
		classes      string
		linux        *specs.Linux
		wantStarted  bool
		wantReleased bool
	}{
		{"immutable with own PID namespace", scratchAndVolume, ownPID, true, true},
		{"immutable in host PID namespace", scratchAndVolume, nil, false, false},
		{"machine with own PID namespace", machineRoot, ownPID, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSetupEnv(t)
			cfg := e.config(t, tt.classes)
			c := e.container("c1", nil)
			c.spec.Linux = tt.linux
			c.rootfs = []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + e.layer, "upperdir=" + filepath.Join(e.tmp, "u"), "workdir=" + filepath.Join(e.tmp, "w")}}}
			if err := e.setup(t, cfg, c); err != nil {
				t.Fatal(err)
			}
			wait := e.storage.releaseBeside(e.bundle, "ns", "c1")
			if (wait != nil) != tt.wantStarted {
				t.Fatalf("release started beside runc's delete: %v, want %v", wait != nil, tt.wantStarted)
			}
			if wait != nil {
				released, err := wait()
				if err != nil || released != tt.wantReleased {
					t.Fatalf("wait = %v, %v; want released %v", released, err, tt.wantReleased)
				}
			}
			if tt.wantReleased {
				e.assertReleased(t, "c1")
				return
			}
			// Still held: the release after runc's delete does it.
			jpath := state.Dir(e.state).Journal("ns", "c1")
			e.storage.mu.Lock()
			_, held := e.storage.live[jpath]
			e.storage.mu.Unlock()
			locks, _ := filepath.Glob(filepath.Join(e.srv, ".locks", "ns", "*"))
			if !held || len(locks) != 1 {
				t.Fatalf("journal held %v, locks %v: want the storage still held", held, locks)
			}
			if h, _ := volumes.ReadHolder(locks[0]); h.Container != "c1" {
				t.Fatalf("lock %s held by %+v, want c1", locks[0], h)
			}
			if err := e.storage.teardownBundle(e.bundle, "ns", "c1"); err != nil {
				t.Fatal(err)
			}
			e.assertReleased(t, "c1")
		})
	}
}
