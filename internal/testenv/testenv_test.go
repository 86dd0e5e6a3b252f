package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands for a test: it records Fatalf and Skip instead of
// ending the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skip(a ...any)                  { r.skip = fmt.Sprint(a...) }

func TestSkip(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	Skip(r, "needs mkfs.ext4", "install e2fsprogs")
	if r.skip != "needs mkfs.ext4" || r.fatal != "" {
		t.Errorf("outside CI: skip %q, fatal %q; want a skip", r.skip, r.fatal)
	}

	t.Setenv("CI", "1")
	r = &recorder{TB: t}
	Skip(r, "needs mkfs.ext4", "install e2fsprogs")
	if r.skip != "" || !strings.Contains(r.fatal, "needs mkfs.ext4") || !strings.Contains(r.fatal, "CI is set: install e2fsprogs") {
		t.Errorf("under CI: skip %q, fatal %q; want a failure that says what to do", r.skip, r.fatal)
	}
}
