//go:build linux

package volumes

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestImageString(t *testing.T) {
	tests := []struct {
		img  Image
		want string
	}{
		{Image{Name: "docker.io/library/app:1", ChainID: "sha256:aa"}, "docker.io/library/app:1 (layers sha256:aa)"},
		{Image{ChainID: "sha256:bb"}, "layers sha256:bb"},
	}
	for _, tt := range tests {
		if got := tt.img.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.img, got, tt.want)
		}
	}
}

func TestSetImage(t *testing.T) {
	v1 := Image{Name: "app:1", ChainID: "sha256:one"}
	v1retag := Image{Name: "app:stable", ChainID: "sha256:one"}
	v2 := Image{Name: "app:2", ChainID: "sha256:two"}
	tests := []struct {
		name        string
		had         *Image
		changes     []ImageChange
		img         Image
		refuse      bool
		wantImage   Image
		wantChanges []ImageChange // From and To; At is checked apart
		wantErr     bool
	}{
		{name: "first image recorded", img: v1, wantImage: v1},
		{name: "first image recorded under refuse", img: v1, refuse: true, wantImage: v1},
		{name: "same image", had: &v1, img: v1, wantImage: v1},
		{name: "same image under refuse", had: &v1, img: v1, refuse: true, wantImage: v1},
		{name: "same layers, new name", had: &v1, img: v1retag, refuse: true, wantImage: v1retag},
		{name: "change kept", had: &v1, img: v2, wantImage: v2, wantChanges: []ImageChange{{From: v1, To: v2}}},
		{
			name: "second change appended", had: &v2, changes: []ImageChange{{From: v1, To: v2}}, img: v1, wantImage: v1,
			wantChanges: []ImageChange{{From: v1, To: v2}, {From: v2, To: v1}},
		},
		{name: "change refused", had: &v1, img: v2, refuse: true, wantImage: v1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Meta{Name: "db-root", Namespace: "ns", ImageChanges: append([]ImageChange(nil), tt.changes...)}
			if tt.had != nil {
				had := *tt.had
				m.Image = &had
			}
			before := time.Now().UTC()
			err := m.setImage(tt.img, tt.refuse)
			if tt.wantErr {
				if !errdefs.IsFailedPrecondition(err) {
					t.Fatalf("setImage = %v, want FailedPrecondition", err)
				}
				for _, s := range []string{"db-root", tt.had.String(), tt.img.String(), `on_image_change = "keep"`} {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not say %q", err, s)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if m.Image == nil || *m.Image != tt.wantImage {
				t.Errorf("image = %v, want %v", m.Image, tt.wantImage)
			}
			if len(m.ImageChanges) != len(tt.wantChanges) {
				t.Fatalf("changes = %+v, want %+v", m.ImageChanges, tt.wantChanges)
			}
			for i, c := range m.ImageChanges {
				want := tt.wantChanges[i]
				if c.From != want.From || c.To != want.To {
					t.Errorf("change %d = %v -> %v, want %v -> %v", i, c.From, c.To, want.From, want.To)
				}
				if i >= len(tt.changes) && (c.At.Before(before) || c.At.Location() != time.UTC) {
					t.Errorf("change %d at %v, want a UTC time from now", i, c.At)
				}
			}
			if tt.changes != nil && !reflect.DeepEqual(m.ImageChanges[:len(tt.changes)], tt.changes) {
				t.Errorf("earlier changes rewritten: %+v", m.ImageChanges)
			}
		})
	}
}
