package volumes

import (
	"fmt"
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

		{"", false},
		{"..", false},
		{".", false},
		{"../x", false},
		{"a/b", false},
		{"/a", false},
		{".x", false},
		{"-x", false},
		{"_x", false},
		{"Upper", false},
		{"a b", false},
		{"a\n", false},
		{"a\x00", false},
		{"é", false},
		{"caf\u00e9", false},
		{"ａ", false}, // fullwidth a
		{strings.Repeat("a", 64), false},
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
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.name)) || !strings.Contains(err.Error(), "a-z 0-9") {
				t.Errorf("error %q does not say what a name may hold", err)
			}
		})
	}
}
