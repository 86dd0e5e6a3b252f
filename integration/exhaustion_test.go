package integration

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// The state dir or a backend runs out of space: a clear error, and nothing
// of the container is left.
func TestOutOfSpace(t *testing.T) {
	cases := []struct {
		name  string
		class string
		fill  string // what to fill before the run
		free  int    // bytes to leave free on it
		want  string
	}{
		// The journal's first record does not fit.
		{"state dir full", "web", "state", 0, "no space left on device"},
		// The sparse scratch image fits, its filesystem's metadata does not.
		{"disk full during mkfs", "web", "state", 24 << 10, "mkfs.ext4"},
		// A loopfile volume larger than its backend's free space.
		{"backend too small", "db", "images", 1 << 20, "does not fit in the"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newFaultCase(t)
			dir := filepath.Join(tc.dir, c.fill)
			if c.fill == "images" {
				os.Remove(dir)
			}
			tc.mountTmpfs(dir, 2<<20)
			fill(t, dir, c.free)
			out, err := tc.run("full", image1, []string{class(c.class), volName("full")}, "true")
			if err == nil {
				t.Fatalf("ran with a full %s: %s", c.fill, out)
			}
			mustContain(t, out, c.want)
			t.Logf("%s", out)
			if err := tc.remove("full"); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
				t.Fatal(err)
			}
			tc.assertClean()
			entries, _ := os.ReadDir(filepath.Join(tc.dir, "images", tc.namespace))
			for _, e := range entries {
				t.Errorf("a failed create left a volume: %s", e.Name())
			}
		})
	}
}

// fill writes a file into dir until about free bytes are left.
func fill(t *testing.T, dir string, free int) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int(st.Bavail)*int(st.Bsize) <= free {
			return
		}
		if _, err := f.Write(block); err != nil {
			return // full
		}
	}
}
