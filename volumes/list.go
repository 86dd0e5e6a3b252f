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
}

// Hidden directory prefixes of volumes being made or removed; List skips
// them and gc removes those whose volume lock is free.
const (
	creatingPrefix = ".creating-"
	removingPrefix = ".removing-"
)

// List returns the volumes of namespace ns in the backends, or of every
// namespace when ns is "". It reads one small file per volume and stats
// one lock, never the content, so it stays fast with many volumes.
func (s *Store) List(backends []Backend, ns string) ([]Info, error) {
	type job struct {
		b   Backend
		dir string
	}
	var jobs []job
	for _, b := range backends {
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
				jobs = append(jobs, job{b, filepath.Join(b.Path, n, name)})
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
				infos[i], errs[i] = s.info(jobs[i].b, jobs[i].dir)
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
		return strings.Compare(a.Namespace+"/"+a.Name+"/"+a.Backend, b.Namespace+"/"+b.Name+"/"+b.Backend)
	})
	return out, nil
}

func (s *Store) info(b Backend, dir string) (Info, error) {
	m, err := ReadMeta(dir)
	if err != nil {
		return Info{}, err
	}
	info := Info{Meta: m, Dir: dir}
	if m.Type == Loopfile {
		if n, err := allocated(filepath.Join(dir, imageFile)); err == nil {
			info.Used = &n
		}
	}
	// The directory names are the truth: a copied volume.json may disagree.
	info.Name, info.Namespace, info.Backend = filepath.Base(dir), filepath.Base(filepath.Dir(dir)), b.Name
	if h, held := ReadHolder(s.LockPath(info.Namespace, info.Name)); held {
		info.Holder = &h
	}
	return info, nil
}

// Inspect returns volume name of namespace ns in backend b.
func (s *Store) Inspect(b Backend, ns, name string) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	return s.info(b, b.Dir(ns, name))
}

// Find returns the backend that holds volume name of namespace ns. A name
// found in several backends must be picked by backend.
func (s *Store) Find(backends []Backend, ns, name string) (Backend, Meta, error) {
	if err := ValidateName(name); err != nil {
		return Backend{}, Meta{}, err
	}
	var found []Backend
	var meta Meta
	for _, b := range backends {
		m, err := ReadMeta(b.Dir(ns, name))
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Backend{}, Meta{}, fmt.Errorf("find volume %s: %w", name, err)
		}
		found, meta = append(found, b), m
	}
	switch len(found) {
	case 0:
		return Backend{}, Meta{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf(
			"volume %s does not exist in namespace %s: see persistctl volumes ls", name, ns))
	case 1:
		return found[0], meta, nil
	}
	var names []string
	for _, b := range found {
		names = append(names, b.Name)
	}
	return Backend{}, Meta{}, errdefs.ErrFailedPrecondition.WithMessage(fmt.Sprintf(
		"volume %s of namespace %s is in backends %s: name one with --backend", name, ns, strings.Join(names, ", ")))
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
