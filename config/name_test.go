package config

import (
	"regexp"
	"strings"
	"testing"
)

// oldNamePattern is what validName replaced; it stays here to prove the
// hand-written check accepts exactly what it did.
var oldNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// TestValidNameMatchesPattern compares the check with the pattern on every
// string of up to three bytes of an alphabet holding a byte of each class
// the pattern tells apart and bytes next to its ranges' ends, and on
// lengths around the limit.
func TestValidNameMatchesPattern(t *testing.T) {
	const alphabet = "az09_-.A`{/:\n\x00\xc3\xa9"
	var all func(prefix string, n int)
	all = func(prefix string, n int) {
		compareWithPattern(t, prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(alphabet); i++ {
			all(prefix+alphabet[i:i+1], n-1)
		}
	}
	all("", 3)
	for n := 61; n <= 65; n++ {
		for _, s := range []string{strings.Repeat("a", n), "a" + strings.Repeat("_", n-1), "_" + strings.Repeat("a", n-1)} {
			compareWithPattern(t, s)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"", "web", "machine-dir", "a_b", "-a", "Web", "é", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(compareWithPattern)
}

func compareWithPattern(t *testing.T, s string) {
	if got, want := validName(s), oldNamePattern.MatchString(s); got != want {
		t.Errorf("validName(%q) = %v, the pattern says %v", s, got, want)
	}
}
