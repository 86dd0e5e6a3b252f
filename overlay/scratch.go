package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
)

// Scratch is one writable, size-limited path of a container that vanishes
// with it.
type Scratch struct {
	Path string // in the container
	Disk bool   // a loop-mounted ext4 image instead of tmpfs
	Size uint64 // bytes
}

// Setup mounts the scratch's upper filesystem at dir (which it creates) and
// returns the OCI mount that lays it over rootfs+Path. The upper directory
// takes the mode and owner of the image's directory at Path.
func (s Scratch) Setup(h host.Mounter, j *journal.Journal, dir, rootfs string, owner Owner) (specs.Mount, error) {
	if err := j.Record(journal.Step{Kind: journal.Dir, Path: dir}); err != nil {
		return specs.Mount{}, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return specs.Mount{}, err
	}
	m := mount.Mount{
		Type:    "tmpfs",
		Source:  "tmpfs",
		Options: []string{"size=" + strconv.FormatUint(s.Size, 10), "mode=0700", "nodev", "nosuid"},
	}
	if s.Disk {
		image := dir + ".img"
		if err := j.Record(journal.Step{Kind: journal.File, Path: image}); err != nil {
			return specs.Mount{}, err
		}
		if err := h.MakeImage(image, s.Size, false); err != nil {
			return specs.Mount{}, fmt.Errorf("make scratch image for %s: %w", s.Path, err)
		}
		m = mount.Mount{Type: "ext4", Source: image, Options: []string{"loop", "nodev", "nosuid", "noatime"}}
	}
	if err := j.Record(journal.Step{Kind: journal.Mount, Path: dir}); err != nil {
		return specs.Mount{}, err
	}
	if err := h.Mount(m, dir); err != nil {
		return specs.Mount{}, fmt.Errorf("mount scratch for %s: %w", s.Path, err)
	}
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	if err := owner.Mkdir(upper); err != nil {
		return specs.Mount{}, err
	}
	if err := os.Mkdir(work, 0o700); err != nil {
		return specs.Mount{}, err
	}
	return specs.Mount{
		Destination: s.Path,
		Type:        "overlay",
		Source:      "overlay",
		Options: []string{
			"lowerdir=" + filepath.Join(rootfs, s.Path),
			"upperdir=" + upper,
			"workdir=" + work,
			"nosuid", "nodev",
		},
	}, nil
}
