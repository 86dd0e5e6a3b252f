package fstree

import (
	"bytes"
	"encoding/binary"
)

// dirent is one entry of a directory as getdents64 gives it.
type dirent struct {
	name string
	typ  uint8 // unix.DT_*; DT_UNKNOWN where the filesystem does not say
}

// parseDirents appends the entries in buf, the result of one getdents64,
// to out, all but "." and "..". unix.ParseDirent drops the type, which
// saves RemoveAll a failed unlink for each directory.
func parseDirents(buf []byte, out []dirent) []dirent {
	// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
	const nameOff = 19
	for len(buf) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		if reclen < nameOff || reclen > len(buf) {
			break
		}
		rec := buf[:reclen]
		buf = buf[reclen:]
		if binary.NativeEndian.Uint64(rec[0:8]) == 0 {
			continue // a deleted entry
		}
		name := rec[nameOff:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if s := string(name); s != "." && s != ".." {
			out = append(out, dirent{name: s, typ: rec[18]})
		}
	}
	return out
}
