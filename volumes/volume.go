package volumes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host"
)

// Backend types.
const (
	Dir      = "dir"
	Loopfile = "loopfile"
)

// Backend is a place where volumes live.
type Backend struct {
	Name string
	Type string // Dir or Loopfile
	Path string
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
	Name         string        `json:"name"`
	Namespace    string        `json:"namespace"`
	Backend      string        `json:"backend"`
	Type         string        `json:"type"`
	Size         uint64        `json:"size,omitempty"`
	Created      time.Time     `json:"created"`
	LastAttached time.Time     `json:"last_attached,omitzero"`
	LastHolder   string        `json:"last_holder,omitempty"`
	Class        string        `json:"class,omitempty"`
	Image        *Image        `json:"image,omitempty"`
	ImageChanges []ImageChange `json:"image_changes,omitempty"`
}

const (
	metaFile  = "volume.json"
	contentFS = "fs"       // a dir volume's content
	imageFile = "disk.img" // a loopfile volume's filesystem image
)

// Store finds, creates and attaches volumes.
type Store struct {
	stateDir string
	mounter  host.Mounter
	locks    *Locks
}

// Open returns the store whose locks and loop mounts live under stateDir.
func Open(stateDir string, m host.Mounter, locks *Locks) *Store {
	return &Store{stateDir: stateDir, mounter: m, locks: locks}
}

// Dir returns the directory of volume name of namespace ns in backend b.
func (b Backend) Dir(ns, name string) string { return filepath.Join(b.Path, ns, name) }

// LockPath returns the path of a volume's lock.
func (s *Store) LockPath(ns, name string) string {
	return filepath.Join(s.stateDir, "locks", ns, name)
}

// MountPath returns where a loopfile volume is mounted while attached.
func (s *Store) MountPath(ns, name string) string {
	return filepath.Join(s.stateDir, "mounts", ns, name)
}

// ReadMeta reads the metadata of a volume directory.
func ReadMeta(dir string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("volume %s does not exist", filepath.Base(dir)))
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, metaFile), err)
	}
	return m, nil
}

// WriteMeta replaces a volume's metadata atomically.
func WriteMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, metaFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	// Synced before the rename: some filesystems (XFS) may otherwise leave
	// an empty file under the new name after a crash.
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Create makes a volume in b, whole or not at all: it is built in a hidden
// directory beside its place and renamed into place. Creating a volume that
// exists is ErrAlreadyExists.
func (s *Store) Create(b Backend, m Meta) error { return s.create(b, m, nil, false) }

// create is Create; fill, when set, fills the hidden directory before it is
// renamed into place.
func (s *Store) create(b Backend, m Meta, fill func(tmp string) error, replace bool) (retErr error) {
	if err := ValidateName(m.Name); err != nil {
		return err
	}
	parent := filepath.Join(b.Path, m.Namespace)
	if err := s.checkBackend(b); err != nil {
		return err
	}
	if b.Type == Loopfile {
		if err := checkFree(b, m.Size); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", m.Name, err)
	}
	final := b.Dir(m.Namespace, m.Name)
	tmp := hiddenPath(final, creatingPrefix)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create volume %s: %w", m.Name, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(tmp) // never mounted: safe to remove whole
		}
	}()
	switch b.Type {
	case Dir:
		if err := os.Mkdir(filepath.Join(tmp, contentFS), 0o755); err != nil {
			return err
		}
	case Loopfile:
		if err := s.mounter.MakeImage(filepath.Join(tmp, imageFile), m.Size, true); err != nil {
			return fmt.Errorf("create volume %s: %w", m.Name, err)
		}
	}
	if fill != nil {
		if err := fill(tmp); err != nil {
			return err
		}
	}
	m.Backend, m.Type, m.Created = b.Name, b.Type, time.Now().UTC()
	if err := WriteMeta(tmp, m); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if replace {
		// One atomic swap: at no moment is neither volume in place.
		if err := exchange(tmp, final); err != nil {
			return fmt.Errorf("replace volume %s: %w", m.Name, err)
		}
		if err := syncDir(parent); err != nil {
			return err
		}
		// tmp now holds the old volume, which the caller checked is not
		// mounted; RemoveAll unlinks links, never follows them.
		return os.RemoveAll(tmp)
	}
	if err := os.Rename(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, unixENOTEMPTY) {
			return errdefs.ErrAlreadyExists.WithMessage(fmt.Sprintf("volume %s already exists in namespace %s", m.Name, m.Namespace))
		}
		return fmt.Errorf("create volume %s: %w", m.Name, err)
	}
	return syncDir(parent)
}

// hiddenPath is a hidden name beside dir for a volume being made or removed:
// <prefix><name>-<random>; see HiddenVolume.
func hiddenPath(dir, prefix string) string {
	var rnd [6]byte
	rand.Read(rnd[:])
	return filepath.Join(filepath.Dir(dir), prefix+filepath.Base(dir)+"-"+hex.EncodeToString(rnd[:]))
}

// checkBackend says what to do when a backend's directory is missing. One
// under the state dir is made: the store owns it. One elsewhere may be a
// mountpoint whose storage is not mounted, and writing there would fill the
// wrong filesystem.
func (s *Store) checkBackend(b Backend) error {
	fi, err := os.Stat(b.Path)
	if errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(b.Path, s.stateDir+"/") {
		return os.MkdirAll(b.Path, 0o700)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
			"backend %s: directory %s does not exist: create it (or mount its storage) first", b.Name, b.Path))
	}
	if err != nil {
		return fmt.Errorf("backend %s: %w", b.Name, err)
	}
	if !fi.IsDir() {
		return errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
			"backend %s: %s is not a directory: point path at a directory", b.Name, b.Path))
	}
	return nil
}
