package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/log"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/overlay"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// setupRun is the setup of one container's storage, step by step. Every
// host-side step is recorded in j before it is taken. j is made before the
// first (see openJournal): a class that puts nothing on the host has none.
type setupRun struct {
	address string // containerd's, asked about machine images
	mounter host.Mounter
	cfg     *config.Config
	class   *config.Class
	c       *container
	jpath   string
	hook    Hook
	j       *journal.Journal // nil until openJournal
	holder  volumes.Holder
	store   *volumes.Store
	owner   *storage
	reserve func(image string, size uint64) error // host.Reserve
	vars    map[string]string                     // name template values
	tenant  string                                // of every volume the container gets

	pending     chan struct{}             // closed when the image of the root volume is recorded
	volumeRoots []string                  // the content of the volumes attached
	reserving   []*reservation            // the space of disk scratch images
	scratchDir  bool                      // the directory of the scratch filesystems is made
	mounted     map[int]bool              // the disk scratch areas whose filesystem is mounted (early)
	attached    map[int]*volumes.Attached // the class volumes attached early, by index
}

// reservation is the space of a disk scratch image, being reserved in the
// background. The image is mounted sparse, and its space reserved while
// runc creates the container: before its process can write, and off the
// path of the start, which the reservation of a large image (2.5-3 ms for
// 1 GiB on ext4) would otherwise be on. A create whose reservation fails
// fails, as it did when the reservation came first.
type reservation struct {
	done chan struct{}
	err  error
}

func startReservation(reserve func(string, uint64) error, image string, size uint64) *reservation {
	r := &reservation{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = reserve(image, size)
	}()
	return r
}

// reservedAll waits for the reservations and returns their errors.
func reservedAll(rs []*reservation) error {
	var errs []error
	for _, r := range rs {
		<-r.done
		errs = append(errs, r.err)
	}
	return errors.Join(errs...)
}

// openJournal returns the container's setup journal, making it and the
// pointer to it in the bundle first if need be. It is called before the
// first step on the host, and only then: a class that puts nothing there (a
// memory scratch over an empty image path is a tmpfs that runc mounts) gets
// no journal, and its release has nothing to read or remove. A crash before
// the journal exists has nothing on the host to undo.
func (r *setupRun) openJournal() (*journal.Journal, error) {
	if r.j != nil {
		return r.j, nil
	}
	if err := os.WriteFile(filepath.Join(r.c.bundle, journalPointer), []byte(r.jpath), 0o600); err != nil {
		return nil, err
	}
	j, err := journal.Create(r.jpath)
	if err != nil {
		return nil, fmt.Errorf("create setup journal: %w", err)
	}
	j.BeforeRecord(func(n int) error { return r.hook("create", n) })
	r.j = j
	return j, nil
}

// recorded is how many steps the journal holds.
func (r *setupRun) recorded() int {
	if r.j == nil {
		return 0
	}
	return r.j.Recorded()
}

// wait waits for the background work that setup started.
func (r *setupRun) wait() {
	if r.pending != nil {
		<-r.pending
	}
	reservedAll(r.reserving)
}

func (r *setupRun) do(ctx context.Context) error {
	if r.class.Mode == config.ModeImmutable {
		if r.c.spec.Root == nil {
			return errors.New("the OCI spec has no root")
		}
		r.c.spec.Root.Readonly = true
	}
	// The machine root first: its layer is the top one that scratch and
	// volume paths are looked up in.
	if r.class.Mode == config.ModeMachine {
		if err := r.machineRoot(ctx); err != nil {
			return err
		}
	}
	for i, v := range r.class.Volumes {
		if err := r.volume(v, r.attached[i]); err != nil {
			return err
		}
	}
	return r.scratch()
}

// machineRoot attaches the root volume and moves the root's upper into it.
// What can be checked is checked first: a refused create makes no volume.
func (r *setupRun) machineRoot(ctx context.Context) error {
	if len(r.c.rootfs) != 1 {
		return fmt.Errorf("machine mode needs a root of one overlay mount, got %d mounts: use the overlayfs snapshotter", len(r.c.rootfs))
	}
	root := &r.c.rootfs[0]
	if _, err := overlay.MoveUpper(root.Type, root.Options, "", ""); err != nil {
		return err
	}
	o, err := r.attachOptions(r.class.Backend, r.class.VolumeName, r.class.Size)
	if err != nil {
		return err
	}
	// containerd is asked for the image only when the layers under the
	// root are not the ones recorded with the volume's image; only
	// "refuse" must know it before the container is created.
	o.Lower = lowerOf(*root)
	if r.class.OnImageChange == config.ImageRefuse {
		address, ns, id := r.address, r.c.namespace, r.c.id
		o.RefuseImageChange = true
		o.ImageOf = func() (volumes.Image, error) { return imageOf(ctx, address, ns, id) }
	}
	j, err := r.openJournal()
	if err != nil {
		return err
	}
	a, err := r.store.Attach(j, o)
	if err != nil {
		return err
	}
	r.volumeRoots = append(r.volumeRoots, a.Root)
	if !a.ImageKnown {
		r.recordImage(a.Dir, o.Lower)
	}
	upper, err := a.Subdir("upper", host.Owner{Mode: 0o755})
	if err != nil {
		return err
	}
	work, err := a.Subdir("work", host.Owner{Mode: 0o700})
	if err != nil {
		return err
	}
	root.Options, err = overlay.MoveUpper(root.Type, root.Options, upper, work)
	return err
}

// recordImage asks containerd for the container's image while runc creates
// it, and records it in the root volume's metadata with the layers lower:
// off the start path, as only "refuse" needs it before. The volume's lock
// is held until this is done (see wait).
func (r *setupRun) recordImage(dir, lower string) {
	r.pending = make(chan struct{})
	address, ns, id := r.address, r.c.namespace, r.c.id
	go func() {
		defer close(r.pending)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		img, err := imageOf(ctx, address, ns, id)
		if err == nil {
			err = volumes.RecordImage(dir, img, lower)
		}
		if err != nil {
			log.G(ctx).WithError(err).WithField("id", id).Warn("record the image under a root volume")
		}
	}()
}

// volume attaches a class volume, unless it was attached early (a), and
// bind-mounts its data at its path.
func (r *setupRun) volume(v config.Volume, a *volumes.Attached) error {
	// runc resolves a bind mount's target inside the root, so a symlink on
	// the way is safe there; it only hides the owner to copy.
	owner, err := overlay.LookupOwner(r.c.rootfs, v.Path)
	if err != nil && !errors.Is(err, overlay.ErrSymlink) {
		return fmt.Errorf("volume at %s: %w", v.Path, err)
	}
	if a == nil {
		o, err := r.attachOptions(v.Backend, v.Name, v.Size)
		if err != nil {
			return err
		}
		if a, err = r.attach(o, v, false); err != nil {
			return err
		}
	}
	data, err := a.Subdir("data", owner)
	if err != nil {
		return fmt.Errorf("volume %s: %w", a.Meta.Name, err)
	}
	addMount(r.c.spec, specs.Mount{Destination: v.Path, Type: "bind", Source: data, Options: []string{"rbind", "rw"}})
	return nil
}

// attach attaches the class volume v, named and placed by o; only if it
// exists, when existing.
func (r *setupRun) attach(o volumes.AttachOptions, v config.Volume, existing bool) (*volumes.Attached, error) {
	o.Shared, o.Existing = v.Shared, existing
	j, err := r.openJournal()
	if err != nil {
		return nil, err
	}
	a, err := r.store.Attach(j, o)
	if err != nil {
		return nil, err
	}
	r.volumeRoots = append(r.volumeRoots, a.Root)
	return a, nil
}

// earlyVolumes attaches, before the container's root is known, the class
// volumes that exist already: their lock, metadata and loop mount need
// nothing of the root. A volume still to be made is left to Create, so
// that a create refused for its root makes none, and so is one on a
// cluster backend, whose lock is taken ahead its own way (cluster_early).
// A machine root's volume is always left to Create: what it checks of the
// root comes first.
func (r *setupRun) earlyVolumes() error {
	for i, v := range r.class.Volumes {
		o, err := r.attachOptions(v.Backend, v.Name, v.Size)
		if err != nil {
			return err
		}
		if o.Cluster != nil {
			continue
		}
		if _, err := os.Lstat(o.Backend.Dir(o.ID)); err != nil {
			continue
		}
		a, err := r.attach(o, v, true)
		if err != nil {
			return err
		}
		if r.attached == nil {
			r.attached = map[int]*volumes.Attached{}
		}
		r.attached[i] = a
	}
	return nil
}

// attachOptions names a volume from its template and says where it lives.
func (r *setupRun) attachOptions(backend, template string, size config.Size) (volumes.AttachOptions, error) {
	name, err := config.Expand(template, r.vars)
	var id volumes.ID
	if err == nil {
		id, err = volumes.NewID(r.c.namespace, r.tenant, name)
	}
	if err != nil {
		return volumes.AttachOptions{}, fmt.Errorf("class %s, volume name template %q: %w (set the %s annotation, or change the template)",
			r.class.Name, template, err, AnnotationName)
	}
	b, _ := r.cfg.Backend(backend) // the config was validated whole
	if size == 0 {
		size = b.DefaultSize
	}
	return volumes.AttachOptions{
		ID:      id,
		Backend: volumes.Backend{Name: b.Name, Type: string(b.Type), Path: b.Path, Overcommit: b.Overcommit},
		Size:    uint64(size),
		Class:   r.class.Name,
		Holder:  r.holder,
		Cluster: r.clusterGuard(b, id),
	}, nil
}

// scratch gives the container the class's scratch areas, each laid over
// the image's content at its path.
func (r *setupRun) scratch() error {
	if len(r.class.Scratch) == 0 {
		return nil
	}
	// A root without mounts is the directory the spec names.
	root := filepath.Join(r.c.bundle, "rootfs")
	if r.c.spec.Root != nil && r.c.spec.Root.Path != "" {
		root = r.c.spec.Root.Path
		if !filepath.IsAbs(root) {
			root = filepath.Join(r.c.bundle, root)
		}
	}
	dir := state.Dir(r.cfg.StateDir).Scratch(r.c.namespace, r.c.id)
	mounter := r.scratchMounter()
	for i, sc := range r.class.Scratch {
		if err := underForeignMount(r.c.spec, sc.Path); err != nil {
			return err
		}
		lower, err := overlay.OpenLower(r.c.rootfs, root, sc.Path)
		if errors.Is(err, overlay.ErrSymlink) {
			// The scratch starts as the image's content at its path: a link
			// would make it something else, maybe on the host.
			return fmt.Errorf("scratch path %s is a symlink in the container's root, or under one: make it a directory, or use the link's target as the scratch path", sc.Path)
		}
		if err != nil {
			return fmt.Errorf("scratch %s: %w", sc.Path, err)
		}
		scratch := r.scratchOf(sc)
		scratch.Mounted = r.mounted[i]
		if scratch.OnHost(lower) {
			if err := r.mkScratchDir(dir); err != nil {
				lower.Close()
				return err
			}
		}
		sdir := filepath.Join(dir, strconv.Itoa(i))
		m, err := scratch.Setup(mounter, r.j, sdir, lower)
		lower.Close()
		if err != nil {
			return fmt.Errorf("scratch %s: %w", sc.Path, err)
		}
		if scratch.Disk {
			r.reserving = append(r.reserving, startReservation(r.reserve, scratch.Image(sdir), scratch.Size))
		}
		addMount(r.c.spec, m)
	}
	return nil
}

// earlyScratch mounts the filesystems of the class's disk scratch areas
// before the container's root is known: they need nothing of it. scratch
// finishes them. Their space is reserved from there, after the class's
// volumes have taken theirs, as without an early start: on a filesystem
// too full for both, the volume's refusal says so.
func (r *setupRun) earlyScratch() error {
	dir := state.Dir(r.cfg.StateDir).Scratch(r.c.namespace, r.c.id)
	for i, sc := range r.class.Scratch {
		scratch := r.scratchOf(sc)
		if !scratch.Disk {
			continue
		}
		if err := r.mkScratchDir(dir); err != nil {
			return err
		}
		sdir := filepath.Join(dir, strconv.Itoa(i))
		if err := scratch.MountOwn(r.scratchMounter(), r.j, sdir); err != nil {
			return fmt.Errorf("scratch %s: %w", sc.Path, err)
		}
		if r.mounted == nil {
			r.mounted = map[int]bool{}
		}
		r.mounted[i] = true
	}
	return nil
}

func (r *setupRun) scratchOf(sc config.Scratch) overlay.Scratch {
	return overlay.Scratch{Path: sc.Path, Disk: sc.Medium == config.MediumDisk, Size: uint64(sc.Size), ReserveLater: true,
		Spares: spares(r.cfg.StateDir, r.mounter)}
}

// spares are the spare disk scratch filesystems of a state dir.
func spares(stateDir string, m host.Mounter) overlay.Spares {
	return overlay.Spares{Dir: state.Dir(stateDir).Spares(), Mounter: m}
}

// scratchMounter makes disk scratch images as copies of one formatted once
// per size.
func (r *setupRun) scratchMounter() host.Mounter {
	return host.WithTemplates(r.mounter, state.Dir(r.cfg.StateDir).Templates())
}

// mkScratchDir makes the directory of the scratch filesystems, dir, when
// the first of them needs the host.
func (r *setupRun) mkScratchDir(dir string) error {
	if r.scratchDir {
		return nil
	}
	j, err := r.openJournal()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := j.Record(journal.Step{Kind: journal.Dir, Path: dir}); err != nil {
		return err
	}
	r.scratchDir = true
	return os.Mkdir(dir, 0o700)
}

// underForeignMount refuses a scratch path below a mount of the spec that
// is not a fresh tmpfs (a Kubernetes emptyDir, a bind): runc mounts it first,
// so the scratch would land in what the container may have planted there,
// and runc would make its mountpoint in that mount's source. It compares
// paths only, to say so plainly; what keeps the scratch's content the
// image's own, whatever links are planted, is that its lower is opened
// beneath the image's layers (overlay.OpenLower).
func underForeignMount(spec *specs.Spec, path string) error {
	for _, m := range spec.Mounts {
		dest := filepath.Clean(m.Destination)
		if m.Type != "tmpfs" && strings.HasPrefix(path, dest+"/") {
			return fmt.Errorf("scratch path %s is below the container's %s mount at %s: put the scratch elsewhere, or drop that mount", path, m.Type, dest)
		}
	}
	return nil
}

// addMount adds m to the spec, replacing a mount at the same destination:
// the class decides what is at its paths. runc mounts in order, so m goes
// before any mount below its destination, which would be hidden otherwise.
func addMount(spec *specs.Spec, m specs.Mount) {
	mounts := make([]specs.Mount, 0, len(spec.Mounts)+1)
	added := false
	for _, old := range spec.Mounts {
		dest := filepath.Clean(old.Destination)
		if dest == m.Destination {
			continue
		}
		if !added && strings.HasPrefix(dest, m.Destination+"/") {
			mounts, added = append(mounts, m), true
		}
		mounts = append(mounts, old)
	}
	if !added {
		mounts = append(mounts, m)
	}
	spec.Mounts = mounts
}
