//go:build linux

package volumes

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
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
// volume and tests the locks that exist, never the content, so it stays fast
// with many volumes. A volume removed while it lists is left out.
func (s *Store) List(backends []Backend, ns string) ([]Info, error) {
	var jobs []listJob
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
			d, tenants, err := readListDir(b, n, "")
			if err != nil {
				return nil, fmt.Errorf("list volumes of backend %s: %w", b.Name, err)
			}
			if d == nil {
				continue
			}
			jobs = d.jobs(jobs)
			for _, tenant := range tenants {
				td, _, err := readListDir(b, n, tenant)
				if err != nil {
					return nil, fmt.Errorf("list volumes of backend %s: %w", b.Name, err)
				}
				if td != nil {
					jobs = td.jobs(jobs)
				}
			}
		}
	}
	infos := make([]Info, len(jobs))
	errs := make([]error, len(jobs))
	// Each worker takes the next few volumes: handing them out one by one
	// over a channel woke a goroutine per volume.
	const batch = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0)*2, (len(jobs)+batch-1)/batch) {
		wg.Go(func() {
			var r metaReader
			for {
				first := int(next.Add(batch)) - batch
				if first >= len(jobs) {
					return
				}
				for i := first; i < min(first+batch, len(jobs)); i++ {
					j := jobs[i]
					at, err := j.d.at(j.disk)
					if err == nil {
						infos[i], err = s.info(&r, j.d.b, j.d.ns, j.d.tenant, j.disk, at)
					}
					errs[i] = err
					j.d.done()
				}
			}
		})
	}
	wg.Wait()
	found := make([]*Info, 0, len(infos))
	for i := range infos {
		switch {
		case errdefs.IsNotFound(errs[i]): // removed while listing, or not a volume
		case errs[i] != nil:
			return nil, errs[i]
		default:
			found = append(found, &infos[i])
		}
	}
	// Sort pointers: an Info is a few hundred bytes to move.
	slices.SortFunc(found, compareInfo)
	out := make([]Info, len(found))
	for i, info := range found {
		out[i] = *info
	}
	return out, nil
}

// compareInfo orders volumes by namespace, tenant, name, then backend.
func compareInfo(a, b *Info) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Tenant, b.Tenant),
		strings.Compare(a.Name, b.Name), strings.Compare(a.Backend, b.Backend))
}

// listDir is a directory of volumes being listed, <ns>/[@tenant/] in b.
// While its volumes are read it is open, so that each volume's files are
// found from it, not from /; it is opened by the first of them and closed
// by the last, so that a host with thousands of tenants does not run out of
// descriptors.
type listDir struct {
	b          Backend
	ns, tenant string
	path       string
	disks      []string
	// locks are the names in the directory's locks directory: a volume
	// with no lock file is not held, and needs no open to say so.
	locks map[string]bool

	open    sync.Once
	fd      int
	openErr error
	left    atomic.Int64 // volumes not yet read
}

type listJob struct {
	d    *listDir
	disk string
}

// readListDir reads which volumes the directory of ns and tenant in b has
// and, when tenant is "", which tenants. A missing directory has none: it
// returns nil.
func readListDir(b Backend, ns, tenant string) (*listDir, []string, error) {
	rel := ns
	if tenant != "" {
		rel = filepath.Join(ns, tenantPrefix+tenant)
	}
	d := &listDir{b: b, ns: ns, tenant: tenant, path: filepath.Join(b.Path, rel)}
	entries, err := os.ReadDir(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var tenants []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if t, ok := strings.CutPrefix(e.Name(), tenantPrefix); ok {
			if tenant == "" {
				tenants = append(tenants, t)
			}
			continue
		}
		d.disks = append(d.disks, e.Name())
	}
	if d.locks, err = lockNames(b.LockAt(rel)); err != nil {
		return nil, nil, err
	}
	d.left.Store(int64(len(d.disks)))
	return d, tenants, nil
}

func (d *listDir) jobs(jobs []listJob) []listJob {
	for _, disk := range d.disks {
		jobs = append(jobs, listJob{d, disk})
	}
	return jobs
}

// at is where the volume disk of d is read from, opening d if it is not
// open yet. A directory gone since it was read has no volumes left.
func (d *listDir) at(disk string) (volumeAt, error) {
	d.open.Do(func() {
		d.fd, d.openErr = unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if errors.Is(d.openErr, unix.ENOENT) {
			d.openErr = fmt.Errorf("%w: %s is gone", errdefs.ErrNotFound, d.path)
		} else if d.openErr != nil {
			d.openErr = &os.PathError{Op: "open", Path: d.path, Err: d.openErr}
		}
	})
	// d.path is clean and disk one name: what filepath.Join would make.
	return volumeAt{fd: d.fd, rel: disk, dir: d.path + "/" + disk, locks: d.locks}, d.openErr
}

// done says one volume of d was read; the last closes d.
func (d *listDir) done() {
	if d.left.Add(-1) == 0 && d.openErr == nil {
		unix.Close(d.fd)
	}
}

// lockNames lists the lock files in dir; a missing dir has none (and an
// empty map, not nil, which would have every lock tested).
func lockNames(dir string) (map[string]bool, error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	locks := make(map[string]bool, len(names))
	for _, n := range names {
		locks[n] = true
	}
	return locks, nil
}

// volumeAt is where info reads a volume from: its directory is rel under
// the open directory fd (unix.AT_FDCWD: rel is a path like any other), and
// dir, its full path, is what Info and errors show.
// When locks is not nil, the volume's lock is tested only if its name is
// in it: a lock file made after its directory was read is one taken after
// the volume was listed.
type volumeAt struct {
	fd       int
	rel, dir string
	locks    map[string]bool
}

// info reads the volume whose directory is <ns>/[@tenant/]<disk> in b, from
// at. The directory names are the truth for namespace and tenant: a copied
// volume.json may disagree; its name is taken only if it leads to disk.
func (s *Store) info(r *metaReader, b Backend, ns, tenant, disk string, at volumeAt) (Info, error) {
	name, dir := disk, at.dir
	m, err := r.read(at.fd, at.rel, dir)
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
		if n, err := allocatedAt(at.fd, at.rel+"/"+imageFile); err == nil {
			info.Used = &n
		}
	}
	info.Name, info.Namespace, info.Tenant, info.Backend = id.name, id.namespace, id.tenant, b.Name
	if at.locks == nil || at.locks[diskName(id.name)] {
		if h, held := ReadHolder(b.LockPath(id)); held {
			info.Holder = &h
		}
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
	dir := b.Dir(id)
	info, err := s.info(&metaReader{}, b, id.namespace, id.tenant, diskName(id.name), volumeAt{fd: unix.AT_FDCWD, rel: dir, dir: dir})
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
