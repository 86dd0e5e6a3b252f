package shim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// journalPointer is the file in a container's bundle that names its journal,
// so that `shim delete`, which knows only the bundle, can find it.
const journalPointer = "persist-journal"

// container is what storage setup knows of one container.
type container struct {
	namespace string
	id        string
	bundle    string
	spec      *specs.Spec
	rootfs    []mount.Mount
}

// storage sets up and tears down the storage of containers.
type storage struct {
	address string // containerd's gRPC socket, asked about machine images
	mounter host.Mounter
	locks   *volumes.Locks // held by this process for its containers' lives

	mu   sync.Mutex
	live map[string]*live // by journal path
}

// live is what the storage of a live container needs for its release.
type live struct {
	journal   *journal.Journal // kept open and locked: the container lives
	holder    volumes.Holder   // whose volume locks to release
	failpoint *failpoint       // test builds only
}

// setup gives c the storage of class, editing c.spec and c.rootfs. On error
// everything it did is undone.
func (s *storage) setup(ctx context.Context, cfg *config.Config, class *config.Class, c *container) (retErr error) {
	if err := state.Dir(cfg.StateDir).Prepare(); err != nil {
		return err
	}
	jpath := state.Dir(cfg.StateDir).Journal(c.namespace, c.id)
	// A journal left by an earlier container of the same ID is cleaned first.
	holder := volumes.Holder{Namespace: c.namespace, Container: c.id, Since: time.Now().UTC(), PID: os.Getpid()}
	if err := s.undoer(holder).Release(jpath); err != nil {
		return fmt.Errorf("clean up leftovers of an earlier container %s (run persistctl gc): %w", c.id, err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, journalPointer), []byte(jpath), 0o600); err != nil {
		return err
	}
	fp, err := parseFailpoint(c.spec.Annotations)
	if err != nil {
		return err
	}
	j, err := journal.Create(jpath)
	if err != nil {
		return fmt.Errorf("create setup journal: %w", err)
	}
	j.BeforeRecord(func(n int) error { return fp.at("create", n) })
	defer func() {
		if retErr == nil {
			retErr = fp.at("create", j.Recorded())
		}
		if retErr == nil {
			s.mu.Lock()
			s.live[jpath] = &live{journal: j, holder: holder, failpoint: fp}
			s.mu.Unlock()
			return
		}
		j.Close()
		if err := s.undoer(holder).Release(jpath); err != nil {
			log.G(ctx).WithError(err).WithField("journal", jpath).Error("undo failed setup")
		}
	}()

	if class.Mode == config.ModeImmutable {
		if c.spec.Root == nil {
			return errors.New("the OCI spec has no root")
		}
		c.spec.Root.Readonly = true
	}
	// Volumes first: a machine root's layer is the top layer that scratch
	// paths are looked up in.
	if err := s.setupVolumes(ctx, cfg, class, c, j, holder); err != nil {
		return err
	}
	return s.setupScratch(cfg, class, c, j)
}

// setupScratch mounts the class's scratch areas and lays them over the image.
func (s *storage) setupScratch(cfg *config.Config, class *config.Class, c *container, j *journal.Journal) error {
	if len(class.Scratch) == 0 {
		return nil
	}
	dir := state.Dir(cfg.StateDir).Scratch(c.namespace, c.id)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := j.Record(journal.Step{Kind: journal.Dir, Path: dir}); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	rootfs := filepath.Join(c.bundle, "rootfs")
	for i, sc := range class.Scratch {
		owner, err := overlay.LookupOwner(c.rootfs, sc.Path)
		if errors.Is(err, overlay.ErrSymlink) {
			// The overlay's lower is a host path: a link would lead it out.
			return fmt.Errorf("scratch path %s is a symlink in the container's root, or under one: make it a directory, or use the link's target as the scratch path", sc.Path)
		}
		if err != nil {
			return fmt.Errorf("scratch %s: %w", sc.Path, err)
		}
		scratch := overlay.Scratch{Path: sc.Path, Disk: sc.Medium == config.MediumDisk, Size: uint64(sc.Size)}
		m, err := scratch.Setup(s.mounter, j, filepath.Join(dir, strconv.Itoa(i)), rootfs, owner)
		if err != nil {
			return fmt.Errorf("scratch %s: %w", sc.Path, err)
		}
		addMount(c.spec, m)
	}
	return nil
}

// setupVolumes attaches the machine root volume and the class's volumes.
func (s *storage) setupVolumes(ctx context.Context, cfg *config.Config, class *config.Class, c *container, j *journal.Journal, holder volumes.Holder) error {
	store := volumes.Open(cfg.StateDir, s.mounter, s.locks)
	vars := templateVars(c.spec.Annotations, c.namespace, c.id)
	if class.Mode == config.ModeMachine {
		img, err := imageOf(ctx, s.address, c.namespace, c.id)
		if err != nil {
			return err
		}
		root := rootVolume{image: img, refuseChange: class.OnImageChange == config.ImageRefuse}
		a, err := attach(store, j, cfg, class, vars, holder, class.Backend, class.VolumeName, class.Size, false, &root)
		if err != nil {
			return err
		}
		if err := s.moveRoot(c, a); err != nil {
			return fmt.Errorf("root volume %s: %w", a.Meta.Name, err)
		}
	}
	for _, v := range class.Volumes {
		a, err := attach(store, j, cfg, class, vars, holder, v.Backend, v.Name, v.Size, v.Shared, nil)
		if err != nil {
			return err
		}
		// A bind mount's target is resolved inside the root by runc, so a
		// symlink there is safe; its owner is just unknown.
		owner, err := overlay.LookupOwner(c.rootfs, v.Path)
		if errors.Is(err, overlay.ErrSymlink) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("volume %s at %s: %w", a.Meta.Name, v.Path, err)
		}
		data, err := a.Subdir("data", owner)
		if err != nil {
			return fmt.Errorf("volume %s: %w", a.Meta.Name, err)
		}
		addMount(c.spec, specs.Mount{Destination: v.Path, Type: "bind", Source: data, Options: []string{"rbind", "rw"}})
	}
	return nil
}

// rootVolume is what attaching a machine root volume also checks.
type rootVolume struct {
	image        volumes.Image
	refuseChange bool
}

// attach expands a volume's name template and attaches it.
func attach(store *volumes.Store, j *journal.Journal, cfg *config.Config, class *config.Class, vars map[string]string,
	holder volumes.Holder, backendName, template string, size config.Size, shared bool, root *rootVolume) (*volumes.Attached, error) {
	name, err := config.Expand(template, vars)
	if err == nil {
		err = volumes.ValidateName(name)
	}
	if err != nil {
		return nil, fmt.Errorf("volume name template %q of class %s gave %q: %w", template, class.Name, name, err)
	}
	b, _ := cfg.Backend(backendName) // validated with the config
	if size == 0 {
		size = b.DefaultSize
	}
	o := volumes.AttachOptions{
		Namespace: holder.Namespace,
		Name:      name,
		Backend:   volumes.Backend{Name: b.Name, Type: string(b.Type), Path: b.Path},
		Size:      uint64(size),
		Shared:    shared,
		Class:     class.Name,
		Holder:    holder,
	}
	if root != nil {
		o.Image, o.RefuseImageChange = &root.image, root.refuseChange
	}
	return store.Attach(j, o)
}

// moveRoot makes the volume hold the container's writable root layer.
func (s *storage) moveRoot(c *container, a *volumes.Attached) error {
	if len(c.rootfs) != 1 {
		return fmt.Errorf("machine mode needs a root of one overlay mount, got %d mounts: use the overlayfs snapshotter", len(c.rootfs))
	}
	upper, err := a.Subdir("upper", overlay.Owner{Mode: 0o755})
	if err != nil {
		return err
	}
	work, err := a.Subdir("work", overlay.Owner{Mode: 0o700})
	if err != nil {
		return err
	}
	opts, err := overlay.MoveUpper(c.rootfs[0].Type, c.rootfs[0].Options, upper, work)
	if err != nil {
		return err
	}
	c.rootfs[0].Options = opts
	return nil
}

// teardown releases the storage of container id of namespace ns by its
// journal, which this process holds open while the container lives; a
// missing journal is success.
func (s *storage) teardown(path, ns, id string) error {
	s.mu.Lock()
	l := s.live[path]
	delete(s.live, path)
	s.mu.Unlock()
	u := s.undoer(volumes.Holder{Namespace: ns, Container: id})
	if l == nil {
		return u.Release(path)
	}
	l.journal.Close() // its lock says the container lives; that ends here
	if l.failpoint != nil {
		return journal.Replay(path, failpointUndoer{u, l.failpoint})
	}
	return u.Release(path)
}

// teardownBundle releases the storage of the container whose bundle is given.
func (s *storage) teardownBundle(bundle, ns, id string) error {
	b, err := os.ReadFile(filepath.Join(bundle, journalPointer))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.teardown(strings.TrimSpace(string(b)), ns, id)
}

// addMount adds m to the spec, replacing a mount at the same destination:
// the class decides what is at its paths.
func addMount(spec *specs.Spec, m specs.Mount) {
	kept := spec.Mounts[:0]
	for _, old := range spec.Mounts {
		if filepath.Clean(old.Destination) != m.Destination {
			kept = append(kept, old)
		}
	}
	spec.Mounts = append(kept, m)
}

func (s *storage) undoer(h volumes.Holder) state.Undoer {
	return state.Undoer{Mounter: s.mounter, Locks: s.locks, Holder: h}
}

func newStorage(address string, m host.Mounter) *storage {
	return &storage{address: address, mounter: m, locks: volumes.NewLocks(), live: map[string]*live{}}
}
