//go:build linux

package volumes

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/fstree"
	"github.com/containerd-persist/containerd-persist/host"
)

// paxVolume is the PAX global record in which an export carries the
// volume's metadata; tar tools that do not know it ignore it.
const paxVolume = "PERSIST.volume"

// xattrPrefix is how PAX records carry extended attributes (star, GNU tar
// with --xattrs, bsdtar and Go's archive/tar all read it).
const xattrPrefix = "SCHILY.xattr."

// volumeHeader is the first entry of an export.
func volumeHeader(m Meta) (*tar.Header, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{paxVolume: string(b)}}, nil
}

// exportedMeta reads the metadata of the exported volume from the first
// header of an archive, if it is ours.
func exportedMeta(hdr *tar.Header) (*Meta, bool) {
	if hdr == nil || hdr.Typeflag != tar.TypeXGlobalHeader || hdr.PAXRecords[paxVolume] == "" {
		return nil, false
	}
	var m Meta
	if json.Unmarshal([]byte(hdr.PAXRecords[paxVolume]), &m) != nil {
		return nil, false
	}
	return &m, true
}

// entryPath checks the name of an archive entry and returns it as a clean
// path relative to the volume's root ("." for the root itself). Absolute
// names and ".." are refused rather than stripped: an archive that holds
// them was not made from a volume.
func entryPath(name string) (string, error) {
	bad := func(why string) error {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("archive entry %q %s: the archive was not made by persistctl volumes export, or was tampered with", fstree.Shorten(name), why))
	}
	switch {
	case name == "":
		return "", bad("has no name")
	case strings.HasPrefix(name, "/"):
		return "", bad("is an absolute path")
	case strings.ContainsRune(name, 0):
		return "", bad("holds a NUL byte")
	}
	for rest := name; rest != ""; {
		var c string
		if c, rest, _ = strings.Cut(rest, "/"); c == ".." {
			return "", bad("climbs out with ..")
		}
	}
	return path.Clean(name), nil
}

// sparse entries: archive/tar reads the GNU 1.0 sparse format but cannot
// write it (golang/go#22735), so they are written here, as GNU tar does:
// a PAX header naming the file and its real size, then a ustar header, then
// the map of data fragments, then the data.

// writeSparse writes a sparse regular file hdr whose data lies in frags of
// r. w is under a tar.Writer that has been flushed.
func writeSparse(w io.Writer, hdr *tar.Header, frags []host.Extent, r io.ReaderAt) error {
	if n := len(frags); n == 0 || frags[n-1].Off+frags[n-1].Len < hdr.Size {
		frags = append(frags, host.Extent{Off: hdr.Size}) // the file ends in a hole
	}
	var sm strings.Builder
	fmt.Fprintf(&sm, "%d\n", len(frags))
	var data int64
	for _, f := range frags {
		fmt.Fprintf(&sm, "%d\n%d\n", f.Off, f.Len)
		data += f.Len
	}
	smap := pad([]byte(sm.String()))
	physical := int64(len(smap)) + data

	records := map[string]string{
		"GNU.sparse.major":    "1",
		"GNU.sparse.minor":    "0",
		"GNU.sparse.name":     hdr.Name,
		"GNU.sparse.realsize": fmt.Sprint(hdr.Size),
		"size":                fmt.Sprint(physical),
		"uid":                 fmt.Sprint(hdr.Uid),
		"gid":                 fmt.Sprint(hdr.Gid),
		"mtime":               fmt.Sprintf("%d.%09d", hdr.ModTime.Unix(), hdr.ModTime.Nanosecond()),
	}
	for k, v := range hdr.PAXRecords {
		records[k] = v
	}
	pax := paxRecords(records)
	short := path.Base(hdr.Name)
	if len(short) > 60 {
		short = short[:60]
	}
	if _, err := w.Write(ustarBlock("PaxHeaders.0/"+short, 0o644, int64(len(pax)), 'x', hdr)); err != nil {
		return err
	}
	if _, err := w.Write(pad(pax)); err != nil {
		return err
	}
	if _, err := w.Write(ustarBlock("GNUSparseFile.0/"+short, hdr.Mode, physical, '0', hdr)); err != nil {
		return err
	}
	if _, err := w.Write(smap); err != nil {
		return err
	}
	for _, f := range frags {
		n, err := io.Copy(w, io.NewSectionReader(r, f.Off, f.Len))
		if err != nil {
			return err
		}
		if n != f.Len {
			return fmt.Errorf("%s shrank while it was read", fstree.Shorten(hdr.Name))
		}
	}
	_, err := w.Write(make([]byte, (512-data%512)%512))
	return err
}

// paxRecords encodes records as "<length> <key>=<value>\n", where the
// length counts itself, in a stable order.
func paxRecords(records map[string]string) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(records)) {
		body := " " + k + "=" + records[k] + "\n"
		n := len(body)
		for n != len(fmt.Sprint(n))+len(body) {
			n = len(fmt.Sprint(n)) + len(body)
		}
		b = fmt.Appendf(b, "%d%s", n, body)
	}
	return b
}

// ustarBlock is a ustar header block. Numbers that do not fit are left 0:
// the PAX header before it carries them.
func ustarBlock(name string, mode, size int64, typeflag byte, hdr *tar.Header) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	octal(b[100:108], mode&0o7777)
	octal(b[108:116], int64(hdr.Uid))
	octal(b[116:124], int64(hdr.Gid))
	octal(b[124:136], size)
	octal(b[136:148], hdr.ModTime.Unix())
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	for i := 148; i < 156; i++ {
		b[i] = ' '
	}
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func octal(field []byte, v int64) {
	s := fmt.Sprintf("%0*o", len(field)-1, v)
	if v < 0 || len(s) > len(field)-1 {
		s = strings.Repeat("0", len(field)-1)
	}
	copy(field, s)
}

func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// trailerReader remembers the last 1024 bytes read through it, to tell an
// archive that ends with its two zero blocks from one cut short at an entry
// boundary, which archive/tar also reads as a clean io.EOF.
type trailerReader struct {
	r    io.Reader
	tail [1024]byte
	n    int64
}

func (t *trailerReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	if len(b) >= len(t.tail) {
		copy(t.tail[:], b[len(b)-len(t.tail):])
	} else {
		copy(t.tail[:], t.tail[len(b):])
		copy(t.tail[len(t.tail)-len(b):], b)
	}
	t.n += int64(n)
	return n, err
}

// complete reports whether the archive read so far ended with its trailer.
func (t *trailerReader) complete() bool {
	return t.n >= int64(len(t.tail)) && t.tail == [1024]byte{}
}
