//go:build linux

package volumes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// Backend types.
const (
	Dir      = "dir"
	Loopfile = "loopfile"
)

// Backend is a place where volumes live.
type Backend struct {
	Name       string
	Type       string // Dir or Loopfile
	Path       string
	Overcommit bool // Loopfile: make sparse images, without reserving their space
}

// Image is the identity of the image layers under a machine volume's layer.
type Image struct {
	Name    string `json:"name,omitempty"`
	ChainID string `json:"chain_id"`
}

// ImageChange records that a machine volume was attached over a new image.
type ImageChange struct {
	From Image     `json:"from"`
	To   Image     `json:"to"`
	At   time.Time `json:"at"`
}

// Meta is a volume's metadata, kept in volume.json.
type Meta struct {
	Name         string            `json:"name"`
	Namespace    string            `json:"namespace"`
	Tenant       string            `json:"tenant,omitempty"`
	Backend      string            `json:"backend"`
	Type         string            `json:"type"`
	Size         uint64            `json:"size,omitempty"`
	Overcommit   bool              `json:"overcommit,omitempty"` // its image's space was not reserved
	Created      time.Time         `json:"created"`
	LastAttached time.Time         `json:"last_attached,omitzero"` // newer in attached.json
	LastHolder   string            `json:"last_holder,omitempty"`
	Class        string            `json:"class,omitempty"`
	Image        *Image            `json:"image,omitempty"`
	Lower        string            `json:"lower,omitempty"` // the host's layers of Image (see AttachOptions.Lower)
	ImageChanges []ImageChange     `json:"image_changes,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"` // the operator's, set by persistctl
}

const (
	metaFile  = "volume.json"
	contentFS = "fs"       // a dir volume's content
	imageFile = "disk.img" // a loopfile volume's filesystem image

	// attachedFile records the last attach, written without fsync (see
	// writeAttached): ReadMeta takes it over volume.json's when it is newer.
	attachedFile = "attached.json"
)

// Store finds, creates and attaches volumes.
type Store struct {
	roots   Roots
	mounter host.Mounter
	locks   *Locks
}

// Roots are the directories outside the backends that a Store uses. They
// are in the state dir, whose layout package state owns: it gives them as
// state.Dir.Volumes.
type Roots struct {
	// Mounts is where loopfile volumes are mounted while attached, each at
	// its place below its backend: <Mounts>/<namespace>/[@<tenant>/]<name>.
	Mounts string
	// State is the state dir. A backend whose directory is missing under
	// it is the store's own, and is made (the default config's dir
	// backend); one missing elsewhere is refused.
	State string
}

// Open returns the store that keeps its loop mounts in r.Mounts.
func Open(r Roots, m host.Mounter, locks *Locks) *Store {
	return &Store{roots: r, mounter: m, locks: locks}
}

// Dir returns the directory of a volume in backend b.
func (b Backend) Dir(id ID) string { return filepath.Join(b.Path, id.rel()) }

// LockPath returns the path of a volume's lock. It lives in the backend,
// with the volume, so that every config, state dir and persistctl that
// shares the backend sees who holds the volume.
func (b Backend) LockPath(id ID) string { return b.LockAt(id.rel()) }

// locksDir holds the locks of a backend's volumes; no namespace starts
// with a dot.
const locksDir = ".locks"

// MountPath returns where a loopfile volume is mounted while attached.
func (s *Store) MountPath(id ID) string { return filepath.Join(s.roots.Mounts, id.rel()) }

// ID returns the identity the metadata records.
func (m Meta) ID() (ID, error) { return NewID(m.Namespace, m.Tenant, m.Name) }

// ReadMeta reads the metadata of a volume directory.
func ReadMeta(dir string) (Meta, error) {
	var m Meta
	b, err := readNoFollow(filepath.Join(dir, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: volume %s does not exist", errdefs.ErrNotFound, filepath.Base(dir))
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, metaFile), err)
	}
	// A crash may have left attached.json empty or cut short: then
	// volume.json's last attach stands.
	var last lastAttach
	if b, err := readNoFollow(filepath.Join(dir, attachedFile)); err == nil && json.Unmarshal(b, &last) == nil && last.At.After(m.LastAttached) {
		m.LastAttached, m.LastHolder = last.At, last.Holder
	}
	return m, nil
}

// readMetaOf reads the metadata of volume id in dir, and checks that dir
// holds that volume: two long names could share a directory name only if
// their hashes met, and then the second is refused, never given the first.
func readMetaOf(dir string, id ID) (Meta, error) {
	m, err := ReadMeta(dir)
	if errdefs.IsNotFound(err) {
		return m, fmt.Errorf("%w: volume %s does not exist", errdefs.ErrNotFound, id)
	}
	if err != nil {
		return m, err
	}
	if m.Name != id.name || m.Namespace != id.namespace || m.Tenant != id.tenant {
		return m, fmt.Errorf("%w: %s holds volume %s, not %s: give the volume another name",
			errdefs.ErrAlreadyExists, dir, Quote(m.Name), Quote(id.name))
	}
	return m, nil
}

// readNoFollow reads a file that must not be a link.
func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteMeta replaces a volume's metadata atomically.
func WriteMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	// Close syncs the file before the rename: some filesystems (XFS) may
	// otherwise leave an empty file under the new name after a crash.
	f, err := atomicfile.New(filepath.Join(dir, metaFile), 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Cancel()
		return err
	}
	return f.Close()
}

// Create makes a volume in b, whole or not at all: it is built in a hidden
// directory beside its place and renamed into place. Creating a volume that
// exists is ErrAlreadyExists. The identity in m is set from id.
func (s *Store) Create(b Backend, id ID, m Meta) error { return s.create(b, id, m, nil, false) }

// create is Create; fill, when set, fills the hidden directory before it is
// renamed into place.
func (s *Store) create(b Backend, id ID, m Meta, fill func(tmp string) error, replace bool) (retErr error) {
	if err := id.check(); err != nil {
		return err
	}
	m.Namespace, m.Tenant, m.Name = id.namespace, id.tenant, id.name
	final := b.Dir(id)
	parent := filepath.Dir(final)
	if err := s.checkBackend(b); err != nil {
		return err
	}
	if b.Type == Loopfile && !b.Overcommit { // overcommit may promise more than there is
		if err := checkFree(b, m.Size); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	tmp := hiddenPath(final, creatingPrefix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			fstree.RemoveAll(tmp) // never mounted: safe to remove whole
		}
	}()
	switch b.Type {
	case Dir:
		if err := os.Mkdir(filepath.Join(tmp, contentFS), 0o755); err != nil {
			return err
		}
	case Loopfile:
		if err := s.mounter.MakeImage(filepath.Join(tmp, imageFile), m.Size, host.ImageOptions{Journaled: true, Sparse: b.Overcommit}); err != nil {
			return fmt.Errorf("create volume %s: %w", m.Name, err)
		}
	}
	if fill != nil {
		if err := fill(tmp); err != nil {
			return err
		}
	}
	m.Backend, m.Type, m.Created = b.Name, b.Type, time.Now().UTC()
	m.Overcommit = b.Type == Loopfile && b.Overcommit
	if err := WriteMeta(tmp, m); err != nil {
		return err
	}
	if err := host.SyncPath(tmp); err != nil {
		return err
	}
	if replace {
		// One atomic swap: at no moment is neither volume in place.
		if err := exchange(tmp, final); err != nil {
			return fmt.Errorf("replace volume %s: %w", id, err)
		}
		if err := host.SyncPath(parent); err != nil {
			return err
		}
		// tmp now holds the old volume, which the caller checked is not
		// mounted; RemoveAll unlinks links, never follows them.
		return fstree.RemoveAll(tmp)
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unixENOTEMPTY) {
			return fmt.Errorf("%w: volume %s already exists", errdefs.ErrAlreadyExists, id)
		}
		return fmt.Errorf("create volume %s: %w", m.Name, err)
	}
	return host.SyncPath(parent)
}

// hiddenPath is a hidden name beside dir for a volume being made or removed:
// <prefix><name>-<random>; see HiddenVolume.
func hiddenPath(dir, prefix string) string {
	var rnd [6]byte
	rand.Read(rnd[:])
	return filepath.Join(filepath.Dir(dir), prefix+filepath.Base(dir)+"-"+hex.EncodeToString(rnd[:]))
}

// checkBackend says what to do when a backend's directory is missing, and
// refuses one that others could change. One missing under the state dir is
// made: the store owns it. One elsewhere may be a mountpoint whose storage
// is not mounted, and writing there would fill the wrong filesystem.
func (s *Store) checkBackend(b Backend) error {
	_, err := os.Stat(b.Path)
	if errors.Is(err, fs.ErrNotExist) && s.roots.State != "" && strings.HasPrefix(b.Path, s.roots.State+"/") {
		if err := os.MkdirAll(b.Path, 0o700); err != nil {
			return fmt.Errorf("backend %s: %w", b.Name, err)
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: backend %s: directory %s does not exist: create it (or mount its storage) first",
			errdefs.ErrFailedPrecondition, b.Name, b.Path)
	}
	// Whoever can write a backend can plant a volume, or a link where a
	// volume's content should be, that a container then mounts.
	if err := host.CheckPrivateDir(b.Path); err != nil {
		return fmt.Errorf("backend %s: %w", b.Name, err)
	}
	return nil
}

// backendExists says whether a backend's directory exists, refusing one that
// others could change. A missing backend has no volumes to read.
func backendExists(b Backend) (bool, error) {
	if _, err := os.Stat(b.Path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := host.CheckPrivateDir(b.Path); err != nil {
		return false, fmt.Errorf("backend %s: %w", b.Name, err)
	}
	return true, nil
}
