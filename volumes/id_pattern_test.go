//go:build linux

package volumes

import (
	"regexp"
	"strings"
	"testing"
)

// The patterns that validName and validTenant replaced; they stay here to
// prove the hand-written checks accept exactly what they did.
var (
	oldNamePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	oldTenantPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// patternAlphabet holds a byte of each class the patterns tell apart, and
// bytes next to their ranges' ends.
const patternAlphabet = "aAzZ09._-/@~ \n\x00`{[:/\x7f\xc3\xa9"

// TestNameChecksMatchPatterns compares the checks with the patterns on
// every string of up to three bytes of patternAlphabet, and on lengths
// around the tenant's limit.
func TestNameChecksMatchPatterns(t *testing.T) {
	var all func(prefix string, n int)
	all = func(prefix string, n int) {
		compareWithPatterns(t, prefix)
		if n == 0 {
			return
		}
		for i := 0; i < len(patternAlphabet); i++ {
			all(prefix+patternAlphabet[i:i+1], n-1)
		}
	}
	all("", 3)
	for n := 60; n <= 66; n++ {
		for _, s := range []string{strings.Repeat("a", n), "a" + strings.Repeat("-", n-2) + "a", strings.Repeat("a", n-1) + "-", strings.Repeat("9", n)} {
			compareWithPatterns(t, s)
		}
	}
}

func FuzzNameChecks(f *testing.F) {
	for _, s := range []string{"", "a", "db-0_postgres", "..", ".x", "a-", "-a", "kube-system", "é", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(compareWithPatterns)
}

func compareWithPatterns(t *testing.T, s string) {
	if got, want := validName(s), oldNamePattern.MatchString(s); got != want {
		t.Errorf("validName(%q) = %v, the pattern says %v", s, got, want)
	}
	if got, want := validTenant(s), oldTenantPattern.MatchString(s); got != want {
		t.Errorf("validTenant(%q) = %v, the pattern says %v", s, got, want)
	}
}
