//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
)

// hiddenLeft lists the .creating- directories left in dir.
func hiddenLeft(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".creating-") {
			left = append(left, e.Name())
		}
	}
	return left
}

func TestCreateDir(t *testing.T) {
	tmp := t.TempDir()
	f := &hosttest.Mounter{}
	s := Open(stateRoots(filepath.Join(tmp, "state")), f, NewLocks())
	b := Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "vols")}
	if err := os.Mkdir(b.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	before := time.Now().UTC()
	if err := s.Create(b, vid("ns", "v1"), Meta{Class: "db"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.Path, "ns", "v1")
	if dir != b.Dir(vid("ns", "v1")) {
		t.Fatalf("Dir = %s, want %s", b.Dir(vid("ns", "v1")), dir)
	}
	fi, err := os.Lstat(filepath.Join(dir, "fs"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("fs = %v, %v; want a directory", fi, err)
	}
	m, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "v1" || m.Namespace != "ns" || m.Backend != "local" || m.Type != Dir || m.Class != "db" || m.Created.Before(before) {
		t.Errorf("meta = %+v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "volume.json")); err != nil {
		t.Error(err)
	}
	if len(f.Calls) != 0 {
		t.Errorf("a dir volume made host calls: %q", f.Ops())
	}

	err = s.Create(b, vid("ns", "v1"), Meta{})
	if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "v1") || !strings.Contains(err.Error(), "ns") {
		t.Errorf("second Create = %v, want AlreadyExists naming the volume and namespace", err)
	}
	if m2, _ := ReadMeta(dir); !m2.Created.Equal(m.Created) || m2.Class != "db" {
		t.Errorf("second Create changed the volume: %+v", m2)
	}

	// Namespaces do not see each other's volumes.
	if err := s.Create(b, vid("other", "v1"), Meta{}); err != nil {
		t.Errorf("same name in another namespace: %v", err)
	}

	if err := s.Create(b, ID{}, Meta{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with a bad name = %v, want InvalidArgument", err)
	}
	for _, ns := range []string{"ns", "other"} {
		if left := hiddenLeft(t, filepath.Join(b.Path, ns)); len(left) > 0 {
			t.Errorf("left in %s: %q", ns, left)
		}
	}
	entries, _ := os.ReadDir(b.Path)
	if len(entries) != 2 {
		t.Errorf("backend holds %d entries, want the two namespaces", len(entries))
	}
}

func TestCreateLoopfile(t *testing.T) {
	tmp := t.TempDir()
	b := Backend{Name: "sized", Type: Loopfile, Path: filepath.Join(tmp, "vols")}
	if err := os.Mkdir(b.Path, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("ok", func(t *testing.T) {
		f := &hosttest.Mounter{}
		s := Open(stateRoots(filepath.Join(tmp, "state")), f, NewLocks())
		if err := s.Create(b, vid("ns", "ok"), Meta{Size: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		dir := b.Dir(vid("ns", "ok"))
		if len(f.Calls) != 1 || f.Calls[0].Op != "makeimage" || f.Calls[0].Size != 1<<20 || !f.Calls[0].Image.Journaled {
			t.Fatalf("calls = %+v, want one journaled image of 1MiB", f.Calls)
		}
		// Made in the hidden directory, renamed into place with it.
		if p := f.Calls[0].Target; filepath.Base(p) != "disk.img" || !strings.HasPrefix(filepath.Base(filepath.Dir(p)), ".creating-ok-") {
			t.Errorf("image made at %s, want disk.img in a hidden .creating-ok- directory", p)
		}
		if _, err := os.Stat(filepath.Join(dir, "disk.img")); err != nil {
			t.Error(err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "fs")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a loopfile volume has fs/: %v", err)
		}
		if m, err := ReadMeta(dir); err != nil || m.Type != Loopfile || m.Size != 1<<20 || m.Backend != "sized" {
			t.Errorf("meta = %+v, %v", m, err)
		}
	})

	t.Run("image fails", func(t *testing.T) {
		f := &hosttest.Mounter{FailAt: 1}
		s := Open(stateRoots(filepath.Join(tmp, "state")), f, NewLocks())
		err := s.Create(b, vid("ns", "bad"), Meta{Size: 1 << 20})
		if !errors.Is(err, hosttest.ErrInjected) || !strings.Contains(err.Error(), "create volume bad") {
			t.Fatalf("Create = %v, want the injected failure, wrapped", err)
		}
		if _, err := os.Lstat(b.Dir(vid("ns", "bad"))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("half-made volume visible: %v", err)
		}
	})

	t.Run("larger than the free space", func(t *testing.T) {
		f := &hosttest.Mounter{}
		s := Open(stateRoots(filepath.Join(tmp, "state")), f, NewLocks())
		err := s.Create(b, vid("ns2", "huge"), Meta{Size: 1 << 60})
		if !errdefs.IsResourceExhausted(err) {
			t.Fatalf("Create = %v, want ResourceExhausted", err)
		}
		for _, want := range []string{"sized", "smaller size", b.Path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if len(f.Calls) != 0 {
			t.Errorf("host calls for a volume that cannot fit: %q", f.Ops())
		}
		if _, err := os.Lstat(filepath.Join(b.Path, "ns2")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("namespace dir made for a volume that cannot fit: %v", err)
		}
	})

	if left := hiddenLeft(t, filepath.Join(b.Path, "ns")); len(left) > 0 {
		t.Errorf("left behind: %q", left)
	}
}

func TestCreateBackendDir(t *testing.T) {
	tests := []struct {
		name    string
		path    func(tmp, state string) string // of the backend
		prepare func(t *testing.T, path string)
		wantErr []string // substrings; nil for success
	}{
		{
			name: "existing",
			path: func(tmp, _ string) string { return filepath.Join(tmp, "srv") },
			prepare: func(t *testing.T, p string) {
				if err := os.Mkdir(p, 0o755); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "missing under the state dir is made",
			path: func(_, state string) string { return filepath.Join(state, "volumes") },
		},
		{
			name:    "missing elsewhere",
			path:    func(tmp, _ string) string { return filepath.Join(tmp, "srv", "persist") },
			wantErr: []string{"backend b", "does not exist", "create it"},
		},
		{
			name:    "missing beside the state dir",
			path:    func(_, state string) string { return state + "-volumes" },
			wantErr: []string{"does not exist", "create it"},
		},
		{
			name: "a file",
			path: func(tmp, _ string) string { return filepath.Join(tmp, "file") },
			prepare: func(t *testing.T, p string) {
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{"backend b", "not a directory"},
		},
	}
	for _, tt := range tests {
		for _, typ := range []string{Dir, Loopfile} {
			t.Run(tt.name+"/"+typ, func(t *testing.T) {
				tmp := t.TempDir()
				state := filepath.Join(tmp, "state")
				b := Backend{Name: "b", Type: typ, Path: tt.path(tmp, state)}
				if tt.prepare != nil {
					tt.prepare(t, b.Path)
				}
				s := Open(stateRoots(state), &hosttest.Mounter{}, NewLocks())
				err := s.Create(b, vid("ns", "v"), Meta{Size: 1 << 20})
				if tt.wantErr == nil {
					if err != nil {
						t.Fatal(err)
					}
					if _, err := ReadMeta(b.Dir(vid("ns", "v"))); err != nil {
						t.Error(err)
					}
					return
				}
				if !errdefs.IsFailedPrecondition(err) {
					t.Fatalf("Create = %v, want FailedPrecondition", err)
				}
				for _, s := range append(tt.wantErr, b.Path) {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
				if fi, err := os.Stat(b.Path); err == nil && fi.IsDir() {
					t.Errorf("backend dir %s was made", b.Path)
				}
			})
		}
	}
}

func TestMeta(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadMeta(dir); !errdefs.IsNotFound(err) {
		t.Errorf("ReadMeta without volume.json = %v, want NotFound", err)
	}
	want := Meta{
		Name: "v", Namespace: "ns", Backend: "local", Type: Dir,
		Created:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		LastAttached: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		LastHolder:   "c1",
		Image:        &Image{Name: "app:2", ChainID: "sha256:2"},
		ImageChanges: []ImageChange{{From: Image{ChainID: "sha256:1"}, To: Image{Name: "app:2", ChainID: "sha256:2"}, At: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}},
	}
	if err := WriteMeta(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadMeta(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadMeta =\n %+v\nwant\n %+v", got, want)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("dir holds %v (%v), want volume.json alone: a temporary file left", entries, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "volume.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadMeta(dir)
	var syntax *json.SyntaxError
	if !errors.As(err, &syntax) || !strings.Contains(err.Error(), filepath.Join(dir, "volume.json")) {
		t.Errorf("ReadMeta of a corrupt file = %v, want its JSON syntax error, naming the file", err)
	}
}

// vid is the ID of volume name of namespace ns, of no tenant.
func vid(ns, name string) ID {
	id, err := NewID(ns, "", name)
	if err != nil {
		panic(err)
	}
	return id
}

// stateRoots are the roots a store gets in state dir dir, as state.Dir
// gives them (state imports this package, so its tests cannot).
func stateRoots(dir string) Roots {
	return Roots{Mounts: filepath.Join(dir, "mounts"), State: dir}
}
