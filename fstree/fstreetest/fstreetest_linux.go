package fstreetest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Chain makes depth directories named name, each in the one before, under
// dir (dir/name/name/...), and in the deepest a file named bottom holding
// body, unless bottom is empty. It works by descriptors, one level at a
// time, so depth is not limited by PATH_MAX or by RLIMIT_NOFILE.
func Chain(t testing.TB, dir, name string, depth int, bottom, body string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	defer func() { unix.Close(fd) }()
	for i := range depth {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatalf("mkdir at depth %d: %v", i+1, err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("open at depth %d: %v", i+1, err)
		}
		unix.Close(fd)
		fd = next
	}
	if bottom == "" {
		return
	}
	f, err := unix.Openat(fd, bottom, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatalf("create %s at depth %d: %v", bottom, depth, err)
	}
	defer unix.Close(f)
	if _, err := unix.Write(f, []byte(body)); err != nil {
		t.Fatalf("write %s at depth %d: %v", bottom, depth, err)
	}
}

// LimitFDs lets the test open at most n more descriptors than are open now,
// until it ends (RLIMIT_NOFILE): code that holds one per level of a tree
// fails with EMFILE.
func LimitFDs(t testing.TB, n int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(entries) + n)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}
