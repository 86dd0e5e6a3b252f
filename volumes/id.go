//go:build linux

package volumes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
)

// ID identifies a volume: its containerd namespace, its tenant (the pod's
// Kubernetes namespace under CRI, "" elsewhere) and its name. Only NewID
// makes one, so every ID in the program was validated once, where it was
// made; code that takes an ID trusts it.
type ID struct {
	namespace, tenant, name string
}

// MaxNameLen is the longest volume name: room for a Kubernetes pod name
// (253) and container name (63) and what a template puts around them.
const MaxNameLen = 512

// The patterns of names and tenants are checked by hand: a regexp compiled
// at package init costs every exec of the shim, three per container.

// validName reports whether s is a name: one path component of A-Z a-z 0-9
// . _ -, starting with a letter or digit, so never "." or "..". It accepts
// what ^[A-Za-z0-9][A-Za-z0-9._-]*$ does.
func validName(s string) bool {
	if s == "" || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// validTenant reports whether s is a tenant, a Kubernetes namespace: a DNS
// label of 1 to 63 of a-z 0-9 -, starting and ending with a letter or
// digit. It accepts what ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ does.
func validTenant(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		lowerOrDigit := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !lowerOrDigit && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// NewID validates the three parts of a volume's identity.
func NewID(namespace, tenant, name string) (ID, error) {
	if err := identifiers.Validate(namespace); err != nil {
		return ID{}, fmt.Errorf("%w: namespace %s: %v", errdefs.ErrInvalidArgument, Quote(namespace), err)
	}
	if tenant != "" && !validTenant(tenant) {
		return ID{}, fmt.Errorf("%w: %s is not a valid tenant: a tenant is a Kubernetes namespace, 1 to 63 of a-z 0-9 -", errdefs.ErrInvalidArgument, Quote(tenant))
	}
	if err := ValidateName(name); err != nil {
		return ID{}, err
	}
	return ID{namespace: namespace, tenant: tenant, name: name}, nil
}

// ValidateName reports whether name may name a volume.
func ValidateName(name string) error {
	if len(name) > MaxNameLen || !validName(name) {
		return fmt.Errorf("%w: %s is not a valid volume name: use 1 to %d of A-Z a-z 0-9 . _ -, starting with a letter or digit",
			errdefs.ErrInvalidArgument, Quote(name), MaxNameLen)
	}
	return nil
}

// Namespace is the containerd namespace of the volume.
func (id ID) Namespace() string { return id.namespace }

// Tenant is the volume's tenant, "" for none.
func (id ID) Tenant() string { return id.tenant }

// Name is the volume's full name.
func (id ID) Name() string { return id.name }

// String names the volume for people: namespace/name, or
// namespace/tenant/name.
func (id ID) String() string {
	if id.tenant == "" {
		return id.namespace + "/" + id.name
	}
	return id.namespace + "/" + id.tenant + "/" + id.name
}

// rel is where the volume lives below a backend (and below the state dir's
// mounts): <namespace>/<name>, or <namespace>/@<tenant>/<name> with a
// tenant. "@" starts no volume name, so a tenant's directory never meets a
// volume of no tenant, and volumes made before tenants keep their place.
func (id ID) rel() string {
	if id.tenant == "" {
		return path.Join(id.namespace, diskName(id.name))
	}
	return path.Join(id.namespace, tenantPrefix+id.tenant, diskName(id.name))
}

const (
	tenantPrefix = "@"
	// maxDiskName keeps a volume's hidden names (.creating-<name>-<random>)
	// within NAME_MAX, and overlay mount options, which carry the path
	// twice, short.
	maxDiskName = 63
)

// diskName is the directory name of a volume. A name that fits is itself;
// a longer one is cut and given a hash of the whole name after a "~",
// which no name holds, so it cannot meet another volume's directory. The
// full name is kept in volume.json.
func diskName(name string) string {
	if len(name) <= maxDiskName {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:8])
	return name[:maxDiskName-len(h)-1] + "~" + h
}

// Quote quotes a value from a user or a container for an error message,
// cut to a readable length.
func Quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q… (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// validDiskName reports whether s is a volume's directory name: a name
// that fits, or a cut one with its hash.
func validDiskName(s string) bool {
	if len(s) > maxDiskName {
		return false
	}
	if base, h, ok := strings.Cut(s, "~"); ok {
		return len(h) == 16 && len(base) == maxDiskName-17 && validName(base) && isHex(h)
	}
	return validName(s)
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// Places calls fn with the path below root of every <namespace>/<entry> and
// <namespace>/@<tenant>/<entry>: the layout of a backend's volumes, of its
// locks and of the state dir's mounts. A missing root has none.
func Places(root string, fn func(rel string)) error {
	nss, err := readDirNames(root)
	if err != nil {
		return err
	}
	for _, ns := range nss {
		entries, err := readDirNames(filepath.Join(root, ns))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e, tenantPrefix) {
				fn(path.Join(ns, e))
				continue
			}
			inTenant, err := readDirNames(filepath.Join(root, ns, e))
			if err != nil {
				return err
			}
			for _, v := range inTenant {
				fn(path.Join(ns, e, v))
			}
		}
	}
	return nil
}

// LockAt is the lock of the volume whose place below the backend is rel.
func (b Backend) LockAt(rel string) string { return filepath.Join(b.Path, locksDir, rel) }

// readDirNames lists the names in dir, leaving out the backend's locks; a
// missing dir has none.
func readDirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Name() != locksDir {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// check refuses the zero ID, which no NewID made.
func (id ID) check() error {
	if id.name == "" {
		return fmt.Errorf("%w: no volume named", errdefs.ErrInvalidArgument)
	}
	return nil
}
