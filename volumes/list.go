//go:build linux

package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
)

// Info is a volume as listed: its metadata, where it is, and who holds it.
type Info struct {
	Meta
	Dir string `json:"dir"`
	// Used is the bytes a loopfile volume's image takes on its backend. It
	// is nil for dir volumes: measuring them means walking every file.
	Used   *uint64 `json:"used,omitempty"`
	Holder *Holder `json:"holder,omitempty"` // nil when no container holds it
	// Snapshots are the volume's snapshots, oldest first; only Inspect
	// reads them.
	Snapshots []Snapshot `json:"snapshots,omitempty"`
}

// Hidden directory prefixes of volumes being made or removed; List skips
// them and gc removes those whose volume lock is free.
const (
	creatingPrefix = ".creating-"
	removingPrefix = ".removing-"
)

// List returns the volumes of namespace ns in the backends, or of every
// namespace when ns is "", of every tenant. It reads one small file per
// volume and stats one lock, never the content, so it stays fast with many
// volumes.
func (s *Store) List(backends []Backend, ns string) ([]Info, error) {
	type job struct {
		b                Backend
		ns, tenant, disk string
	}
	var jobs []job
	for _, b := range backends {
		if ok, err := backendExists(b); !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		namespaces := []string{ns}
		if ns == "" {
			var err error
			if namespaces, err = subdirs(b.Path); err != nil {
				return nil, fmt.Errorf("list namespaces of backend %s: %w", b.Name, err)
			}
		}
		for _, n := range namespaces {
			names, err := subdirs(filepath.Join(b.Path, n))
			if err != nil {
				return nil, fmt.Errorf("list volumes of backend %s: %w", b.Name, err)
			}
			for _, name := range names {
				tenant, ok := strings.CutPrefix(name, tenantPrefix)
				if !ok {
					jobs = append(jobs, job{b, n, "", name})
					continue
				}
				inTenant, err := subdirs(filepath.Join(b.Path, n, name))
				if err != nil {
					return nil, fmt.Errorf("list volumes of backend %s: %w", b.Name, err)
				}
				for _, disk := range inTenant {
					jobs = append(jobs, job{b, n, tenant, disk})
				}
			}
		}
	}
	infos := make([]Info, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Go(func() {
			for i := range next {
				j := jobs[i]
				infos[i], errs[i] = s.info(j.b, j.ns, j.tenant, j.disk)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	out := infos[:0]
	for i, info := range infos {
		switch {
		case errdefs.IsNotFound(errs[i]): // removed while listing, or not a volume
		case errs[i] != nil:
			return nil, errs[i]
		default:
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b Info) int {
		return strings.Compare(a.Namespace+"/"+a.Tenant+"/"+a.Name+"/"+a.Backend, b.Namespace+"/"+b.Tenant+"/"+b.Name+"/"+b.Backend)
	})
	return out, nil
}

// info reads the volume whose directory is <ns>/[@tenant/]<disk> in b. The
// directory names are the truth for namespace and tenant: a copied
// volume.json may disagree; its name is taken only if it leads to disk.
func (s *Store) info(b Backend, ns, tenant, disk string) (Info, error) {
	name := disk
	rel := filepath.Join(ns, disk)
	if tenant != "" {
		rel = filepath.Join(ns, tenantPrefix+tenant, disk)
	}
	dir := filepath.Join(b.Path, rel)
	m, err := ReadMeta(dir)
	if err != nil {
		return Info{}, err
	}
	if diskName(m.Name) == disk {
		name = m.Name
	}
	id, err := NewID(ns, tenant, name)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %s is not a volume's directory: %w", errdefs.ErrNotFound, dir, err)
	}
	info := Info{Meta: m, Dir: dir}
	if m.Type == Loopfile {
		if n, err := allocated(filepath.Join(dir, imageFile)); err == nil {
			info.Used = &n
		}
	}
	info.Name, info.Namespace, info.Tenant, info.Backend = id.name, id.namespace, id.tenant, b.Name
	if h, held := ReadHolder(b.LockPath(id)); held {
		info.Holder = &h
	}
	return info, nil
}

// Inspect returns volume id in backend b.
func (s *Store) Inspect(b Backend, id ID) (Info, error) {
	if _, err := backendExists(b); err != nil {
		return Info{}, err
	}
	if _, err := readMetaOf(b.Dir(id), id); err != nil {
		return Info{}, err
	}
	info, err := s.info(b, id.namespace, id.tenant, diskName(id.name))
	if err != nil {
		return Info{}, err
	}
	info.Snapshots, err = ListSnapshots(info.Dir)
	return info, err
}

// Find returns the backend that holds volume id. A name found in several
// backends must be picked by backend.
func (s *Store) Find(backends []Backend, id ID) (Backend, Meta, error) {
	var found []Backend
	var meta Meta
	for _, b := range backends {
		if _, err := backendExists(b); err != nil {
			return Backend{}, Meta{}, err
		}
		m, err := readMetaOf(b.Dir(id), id)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Backend{}, Meta{}, fmt.Errorf("find volume %s: %w", id, err)
		}
		found, meta = append(found, b), m
	}
	switch len(found) {
	case 0:
		return Backend{}, Meta{}, fmt.Errorf("%w: volume %s does not exist: see persistctl volumes ls", errdefs.ErrNotFound, id)
	case 1:
		return found[0], meta, nil
	}
	var names []string
	for _, b := range found {
		names = append(names, b.Name)
	}
	return Backend{}, Meta{}, fmt.Errorf("%w: volume %s is in backends %s: name one with --backend",
		errdefs.ErrFailedPrecondition, id, strings.Join(names, ", "))
}

// subdirs lists the visible directories in dir; a missing dir has none.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
