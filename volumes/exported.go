//go:build linux

package volumes

import (
	"archive/tar"
	"bytes"
	"io"
)

// PeekExport reads the metadata that an export carries before its content
// (see volumeHeader), and returns a reader that yields the whole stream
// again, from its first byte, for Import. A stream that persistctl did not
// make, or that cannot be read, gives no metadata and no error here: Import
// reads it again and says what is wrong with it.
func PeekExport(r io.Reader) (*Meta, io.Reader) {
	var seen bytes.Buffer
	// tar reads exactly the header block and its PAX records, no further.
	hdr, err := tar.NewReader(io.TeeReader(r, &seen)).Next()
	again := io.MultiReader(&seen, r)
	if err != nil {
		return nil, again
	}
	m, ok := exportedMeta(hdr)
	if !ok {
		return nil, again
	}
	return m, again
}
