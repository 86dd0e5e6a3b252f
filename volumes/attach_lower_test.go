//go:build linux

package volumes

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// lowerEnv attaches one machine root volume again and again, as containers
// of one name do, counting how often containerd is asked for the image.
type lowerEnv struct {
	*attachEnv
	img   Image // what containerd says the image is
	asked int
	fail  error // what asking containerd fails with
}

func newLowerEnv(t *testing.T) *lowerEnv {
	e := &lowerEnv{attachEnv: newAttachEnv(t), img: Image{Name: "app:1", ChainID: "sha256:one"}}
	e.journal.Close()
	os.Remove(e.jpath)
	return e
}

func (e *lowerEnv) attach(t *testing.T, lower string, refuse bool) (*Attached, error) {
	t.Helper()
	e.newJournal(t)
	o := e.options(e.dir, "root")
	o.Lower, o.RefuseImageChange = lower, refuse
	if refuse {
		o.ImageOf = func() (Image, error) {
			e.asked++
			return e.img, e.fail
		}
	}
	a, err := e.store.Attach(e.journal, o)
	e.release(t)
	return a, err
}

func (e *lowerEnv) meta(t *testing.T) Meta {
	t.Helper()
	m, err := ReadMeta(e.dir.Dir(vid("ns", "root")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestAttachAsksImageWhenLayersChange: under "refuse", containerd is asked
// for the image on the first attach and whenever the layers under the
// root are not the ones recorded with it; never while they stay.
func TestAttachAsksImageWhenLayersChange(t *testing.T) {
	e := newLowerEnv(t)
	steps := []struct {
		name      string
		lower     string
		img       Image
		wantAsked int
		wantErr   bool
	}{
		{name: "first attach", lower: "L1", img: e.img, wantAsked: 1},
		{name: "same layers", lower: "L1", img: e.img, wantAsked: 1},
		{name: "same layers again", lower: "L1", img: e.img, wantAsked: 1},
		{name: "new layers, same image", lower: "L2", img: e.img, wantAsked: 2},
		{name: "layers unknown", lower: "", img: e.img, wantAsked: 3},
		{name: "layers unknown again", lower: "", img: e.img, wantAsked: 4},
		{name: "new layers, new image refused", lower: "L3", img: Image{Name: "app:2", ChainID: "sha256:two"}, wantAsked: 5, wantErr: true},
		{name: "the old layers", lower: "L2", img: e.img, wantAsked: 6},
		{name: "the old layers again", lower: "L2", img: e.img, wantAsked: 6},
	}
	for _, st := range steps {
		e.img = st.img
		a, err := e.attach(t, st.lower, true)
		if st.wantErr != (err != nil) || st.wantErr && !errdefs.IsFailedPrecondition(err) {
			t.Fatalf("%s: Attach = %v, want an error: %v", st.name, err, st.wantErr)
		}
		if e.asked != st.wantAsked {
			t.Errorf("%s: containerd asked %d times in all, want %d", st.name, e.asked, st.wantAsked)
		}
		if err == nil && !a.ImageKnown {
			t.Errorf("%s: image not known after an attach that had to know it", st.name)
		}
		if m := e.meta(t); !st.wantErr && (m.Lower != st.lower || *m.Image != st.img) {
			t.Errorf("%s: recorded layers %q, image %v; want %q, %v", st.name, m.Lower, m.Image, st.lower, st.img)
		}
	}
}

// TestAttachLayersUnderKeep: under "keep", Attach never asks; it says
// whether the recorded image is over the same layers, and RecordImage
// records a new one with its layers.
func TestAttachLayersUnderKeep(t *testing.T) {
	e := newLowerEnv(t)
	dir := e.dir.Dir(vid("ns", "root"))
	a, err := e.attach(t, "L1", false)
	if err != nil || a.ImageKnown {
		t.Fatalf("first attach = %+v, %v; want the image unknown", a, err)
	}
	mustT(t, RecordImage(dir, e.img, "L1"))
	if a, err := e.attach(t, "L1", false); err != nil || !a.ImageKnown || *a.Meta.Image != e.img {
		t.Fatalf("same layers = %+v, %v; want the recorded image known", a, err)
	}
	if a, err := e.attach(t, "L2", false); err != nil || a.ImageKnown {
		t.Fatalf("new layers = %+v, %v; want the image unknown", a, err)
	}
	v2 := Image{Name: "app:2", ChainID: "sha256:two"}
	mustT(t, RecordImage(dir, v2, "L2"))
	if m := e.meta(t); m.Lower != "L2" || *m.Image != v2 || len(m.ImageChanges) != 1 {
		t.Errorf("after a new image: layers %q, image %v, changes %v", m.Lower, m.Image, m.ImageChanges)
	}
	if e.asked != 0 {
		t.Errorf("containerd asked %d times under keep", e.asked)
	}
}

// TestAttachImageUnknownMakesNoVolume: an attach that must refuse a change
// but cannot learn the image fails before it makes the volume.
func TestAttachImageUnknownMakesNoVolume(t *testing.T) {
	e := newLowerEnv(t)
	e.fail = errors.New("containerd is not there")
	if _, err := e.attach(t, "L1", true); !errors.Is(err, e.fail) {
		t.Fatalf("Attach = %v, want the error of asking", err)
	}
	if _, err := os.Stat(e.dir.Dir(vid("ns", "root"))); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a volume was made: %v", err)
	}
}

// TestAttachLeavesVolumeJSON: an attach whose image is known rewrites no
// volume.json (its rewrite is fsynced); the last attach goes to
// attached.json, which ReadMeta reads, and which a crash may leave empty
// or cut short without harm.
func TestAttachLeavesVolumeJSON(t *testing.T) {
	e := newLowerEnv(t)
	if _, err := e.attach(t, "L1", true); err != nil {
		t.Fatal(err)
	}
	dir := e.dir.Dir(vid("ns", "root"))
	metaPath := filepath.Join(dir, metaFile)
	before, err := os.Stat(metaPath)
	mustT(t, err)
	was, err := os.ReadFile(metaPath)
	mustT(t, err)
	start := time.Now().UTC()
	if _, err := e.attach(t, "L1", true); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(metaPath)
	mustT(t, err)
	is, err := os.ReadFile(metaPath)
	mustT(t, err)
	if !os.SameFile(before, after) || string(is) != string(was) {
		t.Errorf("volume.json was rewritten by an attach of a known image")
	}
	m := e.meta(t)
	if m.LastHolder != holderA.Container || m.LastAttached.Before(start) {
		t.Errorf("last attach read %v by %q, want since %v by %q", m.LastAttached, m.LastHolder, start, holderA.Container)
	}
	var fromJSON Meta
	mustT(t, json.Unmarshal(was, &fromJSON))
	for _, torn := range []string{"", "{\"last_att", "garbage"} {
		mustT(t, os.WriteFile(filepath.Join(dir, attachedFile), []byte(torn), 0o600))
		m := e.meta(t)
		if !m.LastAttached.Equal(fromJSON.LastAttached) || m.LastHolder != fromJSON.LastHolder || m.Name != "root" {
			t.Errorf("attached.json %q: read %+v, want volume.json's last attach", torn, m)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, attachedFile+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a temporary file is left: %v", err)
	}
}

func mustT(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
