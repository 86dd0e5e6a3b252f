package volumes

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// metaReader reads volumes' metadata as ReadMeta does, relative to an open
// directory and into a buffer it reuses. Listing thousands of volumes,
// ReadMeta's full path walks, os.File set-up (fcntl, epoll registration)
// and a fresh buffer per file were most of the time. A metaReader is not
// safe for concurrent use: each goroutine has its own.
type metaReader struct {
	buf []byte
}

// read is ReadMeta of the volume directory rel under the open directory
// dirfd (unix.AT_FDCWD: rel is a path like any other); dir is its full
// path, for errors.
func (r *metaReader) read(dirfd int, rel, dir string) (Meta, error) {
	var m Meta
	b, err := r.readFile(dirfd, rel+"/"+metaFile, filepath.Join(dir, metaFile))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%w: volume %s does not exist", errdefs.ErrNotFound, filepath.Base(dir))
	}
	if err != nil {
		return m, err
	}
	if err := decodeMeta(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, metaFile), err)
	}
	// As ReadMeta: a crash may have left attached.json empty or cut short,
	// and then volume.json's last attach stands.
	var last lastAttach
	if b, err := r.readFile(dirfd, rel+"/"+attachedFile, ""); err == nil && json.Unmarshal(b, &last) == nil && last.At.After(m.LastAttached) {
		m.LastAttached, m.LastHolder = last.At, last.Holder
	}
	return m, nil
}

// readFile reads the file at rel under dirfd, which must not be a link,
// into r's buffer: what it returns is good until the next read. path names
// the file in errors.
func (r *metaReader) readFile(dirfd int, rel, path string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if r.buf == nil {
		r.buf = make([]byte, 0, 4096)
	}
	b := r.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	r.buf = b
	return b, nil
}

// allocatedAt is allocated of the file at rel under dirfd.
func allocatedAt(dirfd int, rel string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, &os.PathError{Op: "lstat", Path: rel, Err: err}
	}
	return uint64(st.Blocks) * 512, nil
}
