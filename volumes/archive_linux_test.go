package volumes

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
)

// archiveWorld is a state dir and a dir backend in a temp dir.
type archiveWorld struct {
	store   *Store
	backend Backend
	holder  Holder
}

func newArchiveWorld(t *testing.T) *archiveWorld {
	testenv.NeedRoot(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "volumes"), 0o700); err != nil {
		t.Fatal(err)
	}
	return &archiveWorld{
		store:   Open(stateRoots(filepath.Join(dir, "state")), host.Linux{}, NewLocks()),
		backend: Backend{Name: "local", Type: Dir, Path: filepath.Join(dir, "volumes")},
		holder:  Holder{Namespace: "ns", Container: "persistctl-test", Since: time.Now()},
	}
}

// capability is a security.capability value granting cap_net_bind_service.
func capability() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001) // revision 2, effective
	binary.LittleEndian.PutUint32(b[4:], 1<<unix.CAP_NET_BIND_SERVICE)
	return b
}

var oddNames = []string{"with space", "new\nline", "ünïcødé ☃", strings.Repeat("long", 60), "-dash", "back\\slash"}

// fillTree writes a tree with every kind of file a volume may hold.
func fillTree(t *testing.T, root string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, body string, mode os.FileMode, uid, gid int) {
		p := filepath.Join(root, name)
		must(os.WriteFile(p, []byte(body), 0o600))
		must(os.Lchown(p, uid, gid))
		must(os.Chmod(p, mode))
	}
	must(os.Mkdir(filepath.Join(root, "dir"), 0o750))
	must(os.Lchown(filepath.Join(root, "dir"), 1000, 1000))
	must(unix.Lsetxattr(filepath.Join(root, "dir"), "trusted.overlay.opaque", []byte("y"), 0))
	write("file", "hello\n", 0o640, 1234, 5678)
	must(unix.Lsetxattr(filepath.Join(root, "file"), "user.note", []byte("a note"), 0))
	must(unix.Lsetxattr(filepath.Join(root, "file"), "trusted.overlay.origin", []byte{0, 1, 2, 0xff}, 0))
	must(os.Link(filepath.Join(root, "file"), filepath.Join(root, "dir", "hard")))
	write("setuid", "#!/bin/sh\n", 0o4755, 0, 0)
	must(unix.Lsetxattr(filepath.Join(root, "setuid"), "security.capability", capability(), 0))
	must(os.Symlink("file", filepath.Join(root, "link")))
	must(os.Symlink("/", filepath.Join(root, "hostroot")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "passwd")))
	must(unix.Lchown(filepath.Join(root, "link"), 7, 8))
	must(unix.Mkfifo(filepath.Join(root, "fifo"), 0o620))
	must(unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(root, "dir", "whiteout"), unix.S_IFCHR, 0))
	must(unix.Mknod(filepath.Join(root, "loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	for i, name := range oddNames {
		write(name, fmt.Sprintf("odd %d", i), 0o644, 0, 0)
	}
	must(os.MkdirAll(filepath.Join(root, "a", "b", "c"), 0o700))
	// 64 MiB with two 4 KiB islands of data.
	f, err := os.Create(filepath.Join(root, "sparse"))
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("x"), 4096), 1<<20)
	must(err)
	_, err = f.WriteAt(bytes.Repeat([]byte("y"), 4096), 32<<20)
	must(err)
	must(f.Truncate(64 << 20))
	must(f.Close())
	old := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	for _, name := range []string{"file", "dir", "a/b", "sparse"} {
		must(os.Chtimes(filepath.Join(root, name), old, old))
	}
}

// fileState is what a round trip must keep of a file.
type fileState struct {
	Type, Mode, UID, GID uint32
	Size                 int64
	Rdev                 uint64
	Mtime                int64
	Link                 string
	Sum                  [32]byte
	Xattrs               map[string]string
	LinkGroup            string // the first name of its inode, for hard links
}

func treeState(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	groups := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "lost+found" {
			return fs.SkipDir // made by mkfs, not by the test
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{Type: st.Mode & unix.S_IFMT, Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			s.Size = st.Size
		}
		if rel != "." && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			s.Mtime = st.Mtim.Nano()
		}
		s.Xattrs, err = listXattrs(p)
		if err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			s.Link, _ = os.Readlink(p)
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.Sum = sha256.Sum256(b)
			if _, ok := groups[st.Ino]; !ok {
				groups[st.Ino] = rel
			}
			s.LinkGroup = groups[st.Ino]
		}
		out[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExportImportRoundTrip(t *testing.T) {
	w := newArchiveWorld(t)
	if err := w.store.Create(w.backend, vid("ns", "src"), Meta{Class: "vm", Labels: map[string]string{"team": "db"}}); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(w.backend.Dir(vid("ns", "src")), contentFS)
	fillTree(t, src)
	if err := os.Chmod(src, 0o711); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := w.store.Export(w.backend, vid("ns", "src"), &archive, w.holder); err != nil {
		t.Fatal(err)
	}
	if archive.Len() > 1<<20 {
		t.Errorf("the archive is %d bytes: the sparse file's holes were written out", archive.Len())
	}
	// The names in the archive are the tree's: nothing behind a symlink.
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(archive.Bytes()))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[strings.TrimSuffix(hdr.Name, "/")] = true
	}
	for name := range treeState(t, src) {
		if !names[name] {
			t.Errorf("archive lacks %q", name)
		}
	}
	for name := range names {
		if strings.HasPrefix(name, "hostroot/") || strings.HasPrefix(name, "passwd/") {
			t.Errorf("archive holds %q, read through a symlink", name)
		}
	}

	m, err := w.store.Import(bytes.NewReader(archive.Bytes()), ImportOptions{ID: vid("ns", "dst"), Backend: w.backend, Holder: w.holder})
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "dst" || m.Class != "vm" || m.Type != Dir || m.Labels["team"] != "db" {
		t.Errorf("imported metadata %+v", m)
	}
	dst := filepath.Join(w.backend.Dir(vid("ns", "dst")), contentFS)
	want, got := treeState(t, src), treeState(t, dst)
	for name, ws := range want {
		if gs, ok := got[name]; !ok {
			t.Errorf("%q is missing after import", name)
		} else if !reflect.DeepEqual(ws, gs) {
			t.Errorf("%q changed:\nwant %+v\n got %+v", name, ws, gs)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%q appeared after import", name)
		}
	}
	if n, _ := allocated(filepath.Join(dst, "sparse")); n > 1<<20 {
		t.Errorf("the imported sparse file takes %d bytes, want its holes kept", n)
	}
	if ls := leftHidden(t, filepath.Join(w.backend.Path, "ns")); len(ls) > 0 {
		t.Errorf("hidden directories left: %v", ls)
	}
}

func leftHidden(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			left = append(left, e.Name())
		}
	}
	return left
}

// tarOf builds an archive from headers; a regular file's body is its name.
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(h.Name))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestImportRefusesHostileArchives(t *testing.T) {
	w := newArchiveWorld(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := func(name string) *tar.Header { return &tar.Header{Typeflag: tar.TypeReg, Name: name} }
	sym := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}
	}
	hard := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}
	}
	rel, _ := filepath.Rel(w.backend.Path, outside) // from a volume's content, five levels down
	climb := "../../../../" + rel
	for _, tc := range []struct {
		name string
		hdrs []*tar.Header
		want string
	}{
		{"dot dot", []*tar.Header{reg("ok"), reg("../../../../" + rel + "/escaped")}, "climbs out"},
		{"dot dot inside", []*tar.Header{reg("a/../../x")}, "climbs out"},
		{"absolute", []*tar.Header{reg(outside + "/abs")}, "absolute"},
		{"write through a symlink", []*tar.Header{sym("l", outside), reg("l/through")}, "symlink is on the way"},
		{"write through a relative symlink", []*tar.Header{sym("l", climb), reg("l/through")}, "symlink is on the way"},
		{"symlink then a file of its name", []*tar.Header{sym("victim", victim), reg("victim")}, ""},
		{"hard link to /etc/passwd", []*tar.Header{hard("pw", "/etc/passwd")}, "absolute"},
		{"hard link climbing out", []*tar.Header{hard("pw", climb+"/victim")}, "climbs out"},
		{"hard link through a symlink", []*tar.Header{sym("l", outside), hard("pw", "l/victim")}, "symlink is on the way"},
		{"a socket type", []*tar.Header{{Typeflag: 'Z', Name: "odd"}}, "cannot be imported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.store.Import(bytes.NewReader(tarOf(t, tc.hdrs...)), ImportOptions{ID: vid("ns", "evil"), Backend: w.backend, Holder: w.holder})
			// A name that is already there fails as the kernel does
			// (O_EXCL); every other refusal is the archive's fault and
			// says what is wrong with it.
			switch {
			case tc.want == "" && !errors.Is(err, fs.ErrExist):
				t.Fatalf("Import = %v, want ErrExist", err)
			case tc.want != "" && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Import = %v, want InvalidArgument saying %q", err, tc.want)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 || entries[0].Name() != "victim" {
				t.Errorf("the directory outside the volume changed: %v", entries)
			}
			if b, _ := os.ReadFile(victim); string(b) != "mine" {
				t.Errorf("the file outside the volume now holds %q", b)
			}
			if _, err := ReadMeta(w.backend.Dir(vid("ns", "evil"))); !errdefs.IsNotFound(err) {
				t.Errorf("a failed import left a volume: %v", err)
			}
			if ls := leftHidden(t, filepath.Join(w.backend.Path, "ns")); len(ls) > 0 {
				t.Errorf("a failed import left %v", ls)
			}
			if _, held := ReadHolder(w.backend.LockPath(vid("ns", "evil"))); held {
				t.Error("a failed import kept the volume's lock")
			}
		})
	}
}

func TestImportExisting(t *testing.T) {
	w := newArchiveWorld(t)
	for _, name := range []string{"a", "b"} {
		if err := w.store.Create(w.backend, vid("ns", name), Meta{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(w.backend.Dir(vid("ns", "a")), contentFS, "from-a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := w.store.Export(w.backend, vid("ns", "a"), &archive, w.holder); err != nil {
		t.Fatal(err)
	}
	o := ImportOptions{ID: vid("ns", "b"), Backend: w.backend, Holder: w.holder}
	if _, err := w.store.Import(bytes.NewReader(archive.Bytes()), o); !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("Import over a volume = %v, want AlreadyExists naming --force", err)
	}
	// A broken archive with --force keeps the old volume.
	o.Force = true
	if _, err := w.store.Import(bytes.NewReader(archive.Bytes()[:archive.Len()-2048]), o); err == nil {
		t.Fatal("a truncated archive was imported")
	}
	if _, err := ReadMeta(w.backend.Dir(vid("ns", "b"))); err != nil {
		t.Fatalf("a failed forced import lost the old volume: %v", err)
	}
	if _, err := w.store.Import(bytes.NewReader(archive.Bytes()), o); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(w.backend.Dir(vid("ns", "b")), contentFS, "from-a")); err != nil || string(b) != "a" {
		t.Fatalf("forced import did not replace the volume: %q %v", b, err)
	}
	if ls := leftHidden(t, filepath.Join(w.backend.Path, "ns")); len(ls) > 0 {
		t.Errorf("hidden directories left: %v", ls)
	}
	// Held by a container: export and import are refused, naming it.
	other := NewLocks()
	web := Holder{Namespace: "ns", Container: "web-1"}
	if err := other.Acquire(w.backend.LockPath(vid("ns", "b")), web, false); err != nil {
		t.Fatal(err)
	}
	defer other.Release(w.backend.LockPath(vid("ns", "b")), web)
	if err := w.store.Export(w.backend, vid("ns", "b"), io.Discard, w.holder); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "web-1") {
		t.Errorf("Export of a held volume = %v, want an error naming web-1", err)
	}
	if _, err := w.store.Import(bytes.NewReader(archive.Bytes()), o); !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), "web-1") {
		t.Errorf("Import over a held volume = %v, want an error naming web-1", err)
	}
}
