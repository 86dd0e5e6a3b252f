//go:build linux

package volumes

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"0", true},
		{"a-b.c_d", true},
		{"web-1.data", true},
		{"a..b", true}, // one component: ".." only matters as a whole name
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), true}, // a directory name is derived
		{strings.Repeat("a", MaxNameLen), true},
		{"Upper", true}, // nerdctl names may have capitals
		{"db-0_postgres", true},

		{"", false},
		{"..", false},
		{".", false},
		{"../x", false},
		{"a/b", false},
		{"/a", false},
		{".x", false},
		{"-x", false},
		{"_x", false},
		{"a b", false},
		{"a\n", false},
		{"a\x00", false},
		{"é", false},
		{"caf\u00e9", false},
		{"ａ", false}, // fullwidth a
		{strings.Repeat("a", MaxNameLen+1), false},
		{"a~b", false}, // "~" marks derived directory names
		{"@t", false},  // "@" marks tenants' directories
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateName(tt.name)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want ok", tt.name, err)
				}
				return
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("ValidateName(%q) = %v, want InvalidArgument", tt.name, err)
			}
			// The message shows the name as given and says what is allowed.
			if !strings.Contains(err.Error(), Quote(tt.name)) || !strings.Contains(err.Error(), "a-z 0-9") {
				t.Errorf("error %q does not say what a name may hold", err)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	tests := []struct {
		ns, tenant, name string
		rel              string // "" when refused
	}{
		{"default", "", "pg", "default/pg"},
		{"k8s.io", "shop", "db-0_postgres", "k8s.io/@shop/db-0_postgres"},
		{"k8s.io", "a-b", "c", "k8s.io/@a-b/c"},
		{"k8s.io", "a", "b-c", "k8s.io/@a/b-c"},
		{"bad/ns", "", "x", ""},
		{"", "", "x", ""},
		{"k8s.io", "Shop", "x", ""},
		{"k8s.io", "../x", "x", ""},
		{"k8s.io", "-a", "x", ""},
		{"k8s.io", strings.Repeat("t", 64), "x", ""},
		{"k8s.io", "t", "", ""},
	}
	for _, tt := range tests {
		id, err := NewID(tt.ns, tt.tenant, tt.name)
		if tt.rel == "" {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("NewID(%q, %q, %q) = %v, want InvalidArgument", tt.ns, tt.tenant, tt.name, err)
			}
			continue
		}
		if err != nil || id.rel() != tt.rel {
			t.Errorf("NewID(%q, %q, %q) = %q, %v; want %q", tt.ns, tt.tenant, tt.name, id.rel(), err, tt.rel)
		}
	}
}

// TestDiskName checks that long names get short, distinct directory
// names that no given name can take.
func TestDiskName(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{
		strings.Repeat("a", 63),
		strings.Repeat("a", 64),
		strings.Repeat("a", 65),
		strings.Repeat("a", 100) + "_main",
		strings.Repeat("a", 100) + "_side",
		strings.Repeat("a", MaxNameLen),
	} {
		d := diskName(name)
		if len(d) > maxDiskName || !validDiskName(d) {
			t.Errorf("diskName(%d chars) = %q: too long or not a directory name", len(name), d)
		}
		if len(name) > maxDiskName && (ValidateName(d) == nil || !strings.Contains(d, "~")) {
			t.Errorf("diskName(%d chars) = %q could be a given name", len(name), d)
		}
		if other, ok := seen[d]; ok {
			t.Errorf("%q and %q share directory %q", other, name, d)
		}
		seen[d] = name
	}
}

func TestQuoteCuts(t *testing.T) {
	q := Quote(strings.Repeat("x", 100000))
	if len(q) > 200 || !strings.Contains(q, "100000 bytes") {
		t.Errorf("Quote of 100 KB = %d bytes: %.120s", len(q), q)
	}
}
