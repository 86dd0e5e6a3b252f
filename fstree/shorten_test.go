package fstree

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShorten(t *testing.T) {
	deep := "/srv/vol/" + strings.Repeat("d/", 21000) + "file"
	for _, tc := range []struct {
		name, in   string
		head, tail string
	}{
		{"short", "/srv/vol/a/b", "/srv/vol/a/b", ""},
		{"at the limit", strings.Repeat("x", 240), strings.Repeat("x", 240), ""},
		{"deep", deep, "/srv/vol/d/d/", "d/d/file"},
		{"runes", strings.Repeat("☃", 200), "☃☃", "☃☃"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Shorten(tc.in)
			if !utf8.ValidString(got) {
				t.Errorf("Shorten cut a rune: %q", got)
			}
			if tc.tail == "" {
				if got != tc.in {
					t.Errorf("Shorten(%q) = %q, want it unchanged", tc.in, got)
				}
				return
			}
			if len(got) > 2*shortenKeep+len("…") || !strings.Contains(got, "…") {
				t.Errorf("Shorten gave %d bytes: %q", len(got), got)
			}
			if !strings.HasPrefix(got, tc.head) || !strings.HasSuffix(got, tc.tail) {
				t.Errorf("Shorten = %q, want it to start with %q and end with %q", got, tc.head, tc.tail)
			}
		})
	}
}
