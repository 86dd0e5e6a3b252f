package config

import (
	"regexp"
	"strings"
	"testing"
)

// oldIndexPattern is what withoutIndexes replaced; it stays here to prove
// the hand-written check drops exactly what it did.
var oldIndexPattern = regexp.MustCompile(`\[\d+\]`)

func TestWithoutIndexes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"classes.web.mode", "classes.web.mode"},
		{"classes.web.scratch[1].path", "classes.web.scratch.path"},
		{"classes.db.volumes[12].name", "classes.db.volumes.name"},
		{"a[0][1]", "a"},
		{"a[]", "a[]"},
		{"a[x]", "a[x]"},
		{"a[1", "a[1"},
		{"[[1]]", "[]"},
		{"[12[3]", "[12"},
		{"a]1[", "a]1["},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := withoutIndexes(tc.in); got != tc.want {
				t.Fatalf("withoutIndexes(%q) = %q, want %q", tc.in, got, tc.want)
			}
			compareWithIndexPattern(t, tc.in)
		})
	}
}

// TestWithoutIndexesMatchesPattern compares the check with the pattern on
// every string of up to five bytes of an alphabet holding a byte of each
// class the pattern tells apart and bytes next to its ranges' ends.
func TestWithoutIndexesMatchesPattern(t *testing.T) {
	const alphabet = "[]09a/:\xd9"
	var all func(prefix string, n int)
	all = func(prefix string, n int) {
		compareWithIndexPattern(t, prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			all(prefix+alphabet[i:i+1], n-1)
		}
	}
	all("", 5)
	compareWithIndexPattern(t, strings.Repeat("[1]", 100))
	compareWithIndexPattern(t, "x["+strings.Repeat("9", 100)+"]y")
}

func FuzzWithoutIndexes(f *testing.F) {
	for _, s := range []string{"", "classes.web.scratch[1].path", "a[0][1]", "[[1]]", "[12[3]", "a[١]"} {
		f.Add(s)
	}
	f.Fuzz(compareWithIndexPattern)
}

func compareWithIndexPattern(t *testing.T, s string) {
	if got, want := withoutIndexes(s), oldIndexPattern.ReplaceAllString(s, ""); got != want {
		t.Errorf("withoutIndexes(%q) = %q, the pattern gives %q", s, got, want)
	}
}
