package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// A released disk scratch image that is not kept as a spare is moved to
// the state dir's trash at delete and unlinked after it, before its shim exits. While it waits
// there it still holds its space, so a reservation that finds the
// filesystem full empties the trash and tries once more: an image that a
// killed shim left in the trash never makes a size promise fail.
func TestTrashedScratchImages(t *testing.T) {
	tc := newFaultCase(t)
	// 48 MiB: the 16 MiB disk scratch, its template, and little more.
	tc.mountTmpfs(tc.stateDir, 48<<20)
	trash := filepath.Join(tc.stateDir, "trash")
	if err := os.Mkdir(trash, 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, trash, unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}

	// With many files left in it, the scratch is not kept as a spare.
	tc.mustRun("trash-first", image1, []string{class("web")}, "sh", "-c", "cd /var/tmp && seq 2000 | xargs touch")
	if n, _ := unix.Read(fd, make([]byte, 4096)); n <= 0 {
		t.Error("the released disk scratch image was not moved to the trash")
	}
	tc.eventually("the shim to unlink the trashed image", func() bool { return isEmptyDir(t, trash) })

	// What a shim killed before it unlinked its images leaves: 36 MiB.
	if err := os.WriteFile(filepath.Join(trash, "0123456789abcdef.img"), make([]byte, 36<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out := tc.mustRun("trash-full", image1, []string{class("web")}, "sh", "-c", "echo fits")
	mustContain(t, out, "fits")
	tc.eventually("the trash to be empty", func() bool { return isEmptyDir(t, trash) })
}

// A shim killed at any step of its release, the move of an image to the
// trash included, leaves nothing there once containerd has cleaned up
// after it: `shim delete` replays the journal and empties the trash.
func TestTrashAfterKilledRelease(t *testing.T) {
	tc := newFailpointCase(t)
	trash := filepath.Join(tc.stateDir, "trash")
	name := "tk"
	steps := tc.seedFailpoints(name)
	for n := range steps {
		id := fmt.Sprintf("tk-%d", n)
		shim := tc.deleteWithFailpoint(id, name, n, "kill")
		tc.eventually(fmt.Sprintf("the shim of %s to die at delete step %d", id, n), func() bool { return !alive(shim) })
		if err := tc.remove(id); err != nil {
			t.Fatal(err)
		}
		journal := filepath.Join(tc.stateDir, "journal", tc.namespace, id)
		tc.eventually("the storage of "+id+" to be released", func() bool {
			_, err := os.Stat(journal)
			return os.IsNotExist(err)
		})
		// No other container runs meanwhile, whose release would empty
		// the trash too.
		tc.eventually(fmt.Sprintf("the trash to be empty after a kill at delete step %d", n), func() bool { return isEmptyDir(t, trash) })
		tc.assertClean()
	}
}

// isEmptyDir says whether dir holds nothing; a missing dir holds nothing.
func isEmptyDir(t *testing.T, dir string) bool {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return len(entries) == 0
}
