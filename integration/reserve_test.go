package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A disk scratch is mounted before its space is reserved, which happens
// while runc creates the container. When the reservation does not fit, the
// create fails with one line saying so, runc's container is deleted before
// it ever ran, and nothing of it is left.
func TestDiskScratchReservationFails(t *testing.T) {
	tc := newFaultCase(t)
	// Room for the image's formatted metadata, not for its 16 MiB.
	tc.mountTmpfs(filepath.Join(tc.dir, "state"), 8<<20)
	out, err := tc.run("unreserved", image1, []string{class("web")}, "true")
	if err == nil {
		t.Fatalf("ran with 16 MiB of disk scratch on an 8 MiB filesystem: %s", out)
	}
	t.Logf("%s", out)
	mustContain(t, out, "reserve 16MiB for image", "free space on its filesystem, or ask for a smaller size")
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("the refusal is not one line:\n%s", out)
	}
	if err := tc.remove("unreserved"); err != nil {
		t.Fatal(err)
	}
	tc.assertClean()
	images, _ := filepath.Glob(filepath.Join(tc.dir, "state", "scratch", "*", "*", "*", "fs.img"))
	for _, img := range images {
		t.Errorf("a failed create left its scratch image %s", img)
	}
	if _, err := os.Stat(filepath.Join(tc.dir, "state", "journal", tc.namespace, "unreserved")); !os.IsNotExist(err) {
		t.Errorf("a failed create left its journal: %v", err)
	}
}
