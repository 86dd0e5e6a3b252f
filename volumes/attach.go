//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/containerd-persist/containerd-persist/host"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/journal"
)

// AttachOptions says which volume to attach, and how to make it if missing.
type AttachOptions struct {
	ID      ID
	Backend Backend
	Size    uint64 // of a new loopfile volume
	Shared  bool
	Class   string
	Holder  Holder
	// Image, for a machine root volume, is the image under its layer; a
	// change of image is recorded, or refused when RefuseImageChange is set.
	Image             *Image
	RefuseImageChange bool
	// Lower, for a machine root volume, identifies the image layers under
	// its layer as this host has them; "" when unknown. It is recorded with
	// the image, and while it stays the same the image is known without
	// asking containerd (Attached.ImageKnown).
	Lower string
	// ImageOf, when Image is nil, tells the image under the layer. Attach
	// asks it only to refuse a change (RefuseImageChange), and only when
	// Lower is not the one recorded with the volume's image.
	ImageOf func() (Image, error)
	// Cluster, set for a volume on a cluster backend, takes its
	// cluster-wide lock before the host lock, and checks it right before
	// the volume is mounted.
	Cluster ClusterGuard
	// Existing attaches only a volume that exists: a missing one is
	// ErrNotFound, and nothing is made.
	Existing bool
}

// Attached is a volume attached to a container.
type Attached struct {
	Dir  string // the volume's directory in its backend
	Root string // its content: a dir volume's fs/, or a loopfile's mount
	Meta Meta
	// ImageKnown says that Meta.Image is the image under a machine root
	// volume's layer: the layers are the ones recorded with it, or the
	// image was given or asked for. Otherwise the caller records it with
	// RecordImage.
	ImageKnown bool
}

// Attach locks the volume, creates it if missing and, for a loopfile volume,
// mounts it. Every step is journaled first; undoing the journal syncs the
// volume, unmounts it and releases the lock, in that order.
func (s *Store) Attach(j *journal.Journal, o AttachOptions) (*Attached, error) {
	id := o.ID
	fail := func(err error) (*Attached, error) { return nil, fmt.Errorf("attach volume %s: %w", id.name, err) }
	if err := id.check(); err != nil {
		return fail(err)
	}
	if err := s.checkBackend(o.Backend); err != nil {
		return fail(err)
	}
	if o.Cluster != nil {
		if err := o.Cluster.Lock(); err != nil {
			return fail(err)
		}
	}
	lock := o.Backend.LockPath(id)
	if err := j.Record(journal.Step{Kind: journal.Lock, Path: lock}); err != nil {
		return nil, err
	}
	if err := s.locks.Acquire(lock, o.Holder, o.Shared); err != nil {
		return fail(err)
	}
	a := &Attached{Dir: o.Backend.Dir(id)}
	img := o.Image
	askImage := func() error {
		if img != nil || !o.RefuseImageChange || o.ImageOf == nil {
			return nil
		}
		got, err := o.ImageOf()
		img = &got
		return err
	}
	meta, err := readMetaOf(a.Dir, id)
	if errdefs.IsNotFound(err) && !o.Existing {
		// Asked before the volume is made: an attach that cannot learn
		// its image makes no volume.
		if err := askImage(); err != nil {
			return fail(err)
		}
		err = s.Create(o.Backend, id, Meta{Size: o.Size, Class: o.Class})
		if err == nil || errdefs.IsAlreadyExists(err) { // a shared volume's other holder made it
			meta, err = readMetaOf(a.Dir, id)
		}
	}
	if err != nil {
		return fail(err)
	}
	if o.Cluster != nil {
		if err := o.Cluster.BeforeMount(a.Dir); err != nil {
			return fail(err)
		}
	}
	a.Root = filepath.Join(a.Dir, contentFS)
	if meta.Type == Loopfile {
		if a.Root, err = s.mountImage(j, a.Dir, id, lock); err != nil {
			return fail(err)
		}
	}
	if err := j.Record(journal.Step{Kind: journal.Sync, Path: a.Root, Lock: lock}); err != nil {
		return nil, err
	}
	a.ImageKnown = o.Lower != "" && meta.Image != nil && meta.Lower == o.Lower
	if !a.ImageKnown {
		if err := askImage(); err != nil {
			return fail(err)
		}
	}
	if !o.Shared {
		meta.LastAttached = time.Now().UTC()
		meta.LastHolder = o.Holder.Container
	}
	switch {
	case img != nil:
		if err := meta.setImage(*img, o.RefuseImageChange); err != nil {
			return nil, err
		}
		meta.Lower, a.ImageKnown = o.Lower, true
		if err := WriteMeta(a.Dir, meta); err != nil {
			return fail(err)
		}
	case !o.Shared:
		if err := writeAttached(a.Dir, meta.LastAttached, meta.LastHolder); err != nil {
			return fail(err)
		}
	}
	a.Meta = meta
	return a, nil
}

// lastAttach is attached.json: when and by which container a volume was
// last attached.
type lastAttach struct {
	At     time.Time `json:"last_attached"`
	Holder string    `json:"last_holder,omitempty"`
}

// writeAttached records the last attach of the volume in dir beside its
// volume.json, replacing the record atomically but without fsync: every
// attach writes it, and a crash that loses or cuts it short loses only
// this record (ReadMeta then reads volume.json's), while volume.json
// itself, rewritten with fsync, changes only when the volume's image does.
func writeAttached(dir string, at time.Time, holder string) error {
	b, err := json.Marshal(lastAttach{At: at, Holder: holder})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, attachedFile)
	tmp := path + ".tmp" // only the holder of the volume's lock writes it
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record the last attach: %w", err)
	}
	return nil
}

// mountImage loop-mounts a loopfile volume's image under the state dir.
// Its unmount guards lock: a volume that may still be mounted here keeps it.
func (s *Store) mountImage(j *journal.Journal, dir string, id ID, lock string) (string, error) {
	target := s.MountPath(id)
	image := filepath.Join(dir, imageFile)
	if err := checkImageFree(image); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return "", err
	}
	if err := j.Record(journal.Step{Kind: journal.Dir, Path: target}); err != nil {
		return "", err
	}
	if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := j.Record(journal.Step{Kind: journal.Mount, Path: target, Lock: lock}); err != nil {
		return "", err
	}
	m := mount.Mount{Type: "ext4", Source: image, Options: []string{"loop"}}
	if err := s.mounter.Mount(m, target); err != nil {
		return "", err
	}
	return target, nil
}

// Subdir makes (if missing) and returns a directory directly under an
// attached volume's root, with owner's mode and ownership when it is new. It
// refuses a symlink that a container may have put there.
func (a *Attached) Subdir(name string, owner host.Owner) (string, error) {
	p := filepath.Join(a.Root, name)
	if err := owner.Mkdir(p); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %s in volume %s is not a directory", errdefs.ErrFailedPrecondition, name, Quote(a.Meta.Name))
	}
	return p, nil
}
