package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestCheckPrivateDir(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string, mode os.FileMode) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	readable := mk("readable", 0o755)
	sticky := mk("sticky", 0o777|os.ModeSticky)
	underSticky := mk("sticky/backend", 0o700)
	open := mk("open", 0o777)
	underOpen := mk("open2/backend", 0o700)
	if err := os.Chmod(filepath.Dir(underOpen), 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{private, readable, underSticky, link} {
		if err := CheckPrivateDir(ok); err != nil {
			t.Errorf("CheckPrivateDir(%s) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{open, sticky, underOpen} {
		err := CheckPrivateDir(bad)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "writable by group or others") || !strings.Contains(err.Error(), "chmod go-w") {
			t.Errorf("CheckPrivateDir(%s) = %v, want a refusal that says what to do", bad, err)
		}
	}
}
