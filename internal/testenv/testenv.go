package testenv

import (
	"os"
	"testing"
)

// CI reports whether the tests run under CI, where nothing may be skipped.
func CI() bool { return os.Getenv("CI") != "" }

// Skip skips t, which cannot run here because of why; fix says what to
// do about it. Under CI it fails t instead.
func Skip(t testing.TB, why, fix string) {
	t.Helper()
	if CI() {
		t.Fatalf("this test %s, and CI is set: %s", why, fix)
		return
	}
	t.Skip(why)
}

// NeedRoot skips t unless it runs as root; under CI it fails t instead.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root", "run the tests as root")
	}
}
