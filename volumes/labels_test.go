//go:build linux

package volumes

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/host/hosttest"
)

func TestParseLabel(t *testing.T) {
	for _, tc := range []struct {
		in         string
		key, value string
		bad        string // part of the error, "" for none
	}{
		{in: "team=db", key: "team", value: "db"},
		{in: "com.example/owner=ops", key: "com.example/owner", value: "ops"},
		{in: "note=a=b c", key: "note", value: "a=b c"},
		{in: "empty=", key: "empty", value: ""},
		{in: "team", bad: "write KEY=VALUE"},
		{in: "=x", bad: "label key"},
		{in: "-x=1", bad: "label key"},
		{in: "x.=1", bad: "label key"},
		{in: "a b=1", bad: "label key"},
		{in: "k=line\nbreak", bad: "no control characters"},
		{in: "k=tab\there", bad: "no control characters"},
		{in: "k=" + strings.Repeat("v", MaxLabelValue+1), bad: "at most"},
		{in: strings.Repeat("k", MaxLabelKey+1) + "=v", bad: "label key"},
		{in: strings.Repeat("k", MaxLabelKey) + "=v", key: strings.Repeat("k", MaxLabelKey), value: "v"},
		{in: "a=1", key: "a", value: "1"},
		{in: "a/=1", bad: "label key"},
		{in: "a_b.c-d/e=1", key: "a_b.c-d/e", value: "1"},
		{in: "é=1", bad: "label key"},
	} {
		key, value, err := ParseLabel(tc.in)
		switch {
		case tc.bad == "" && err != nil:
			t.Errorf("ParseLabel(%q) = %v", tc.in, err)
		case tc.bad == "" && (key != tc.key || value != tc.value):
			t.Errorf("ParseLabel(%q) = %q, %q; want %q, %q", tc.in, key, value, tc.key, tc.value)
		case tc.bad != "" && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.bad)):
			t.Errorf("ParseLabel(%q) = %v, want InvalidArgument saying %q", tc.in, err, tc.bad)
		}
	}
}

func TestSetLabels(t *testing.T) {
	tmp := t.TempDir()
	s := Open(stateRoots(filepath.Join(tmp, "state")), &hosttest.Mounter{}, NewLocks())
	b := Backend{Name: "local", Type: Dir, Path: filepath.Join(tmp, "vols")}
	if err := os.Mkdir(b.Path, 0o700); err != nil {
		t.Fatal(err)
	}
	id := vid("ns", "data")
	if err := s.Create(b, id, Meta{Class: "db", Labels: map[string]string{"team": "db"}}); err != nil {
		t.Fatal(err)
	}
	if m, _ := ReadMeta(b.Dir(id)); !maps.Equal(m.Labels, map[string]string{"team": "db"}) {
		t.Fatalf("labels made with the volume = %v", m.Labels)
	}

	m, err := s.SetLabels(b, id, map[string]string{"tier": "gold", "team": "ops"}, nil, holderA)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"team": "ops", "tier": "gold"}
	onDisk, _ := ReadMeta(b.Dir(id))
	if !maps.Equal(m.Labels, want) || !maps.Equal(onDisk.Labels, want) || onDisk.Class != "db" || onDisk.Name != "data" {
		t.Errorf("after set: returned %v, on disk %+v; want labels %v and the rest kept", m.Labels, onDisk, want)
	}
	if _, err := os.Lstat(b.LockPath(id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SetLabels left its lock: %v", err)
	}

	// Unset of a missing key is no error; with none left, no labels at all.
	if _, err := s.SetLabels(b, id, nil, []string{"team", "nope"}, holderA); err != nil {
		t.Fatal(err)
	}
	if m, _ := ReadMeta(b.Dir(id)); !maps.Equal(m.Labels, map[string]string{"tier": "gold"}) {
		t.Errorf("after unset team: %v", m.Labels)
	}
	if _, err := s.SetLabels(b, id, nil, []string{"tier"}, holderA); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(b.Dir(id), "volume.json"))
	if strings.Contains(string(raw), "labels") {
		t.Errorf("volume.json keeps an empty labels field:\n%s", raw)
	}

	if _, err := s.SetLabels(b, id, map[string]string{"bad key": "x"}, nil, holderA); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a bad label = %v, want InvalidArgument", err)
	}
	if _, err := s.SetLabels(b, vid("ns", "nope"), map[string]string{"a": "b"}, nil, holderA); !errdefs.IsNotFound(err) {
		t.Errorf("labels of a missing volume = %v, want NotFound", err)
	}

	// A volume a container holds is refused, naming the holder, and left as
	// it was.
	other := NewLocks()
	if err := other.Acquire(b.LockPath(id), holderB, false); err != nil {
		t.Fatal(err)
	}
	_, err = s.SetLabels(b, id, map[string]string{"a": "b"}, nil, holderA)
	if !errors.Is(err, ErrHeld) || !errdefs.IsFailedPrecondition(err) ||
		!strings.Contains(err.Error(), "held by container web-2 (namespace ns)") || !strings.Contains(err.Error(), "once that container is deleted") {
		t.Errorf("labels of a held volume = %v, want ErrHeld naming web-2", err)
	}
	if m, _ := ReadMeta(b.Dir(id)); len(m.Labels) != 0 {
		t.Errorf("a refused SetLabels wrote labels %v", m.Labels)
	}
	if h, held := ReadHolder(b.LockPath(id)); !held || !sameHolder(h, holderB) {
		t.Errorf("the holder's lock after a refused SetLabels = %+v, %v", h, held)
	}
	if err := other.Release(b.LockPath(id), holderB); err != nil {
		t.Fatal(err)
	}
}
