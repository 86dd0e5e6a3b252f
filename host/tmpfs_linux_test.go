package host

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// A tmpfs mounted with TmpfsOptions runs out of inodes (ENOSPC) at one per
// page of its size, however small the files.
func TestTmpfsOptionsBoundInodes(t *testing.T) {
	testenv.NeedRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const size = 8 << 20
	if err := (Linux{}).Mount(mount.Mount{Type: "tmpfs", Source: "tmpfs", Options: append(TmpfsOptions(size), "mode=0700", "nodev", "nosuid")}, dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Files != size/4096 {
		t.Fatalf("tmpfs of %d bytes has %d inodes, want %d", size, st.Files, size/4096)
	}
	var err error
	n := 0
	for ; n <= size/4096 && err == nil; n++ {
		err = os.WriteFile(filepath.Join(dir, fmt.Sprint(n)), nil, 0o600)
	}
	if !errors.Is(err, unix.ENOSPC) || n > size/4096 {
		t.Errorf("after %d empty files: %v, want ENOSPC before %d", n, err, size/4096)
	}
}
