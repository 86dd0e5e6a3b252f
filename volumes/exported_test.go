//go:build linux

package volumes

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestPeekExport(t *testing.T) {
	m := Meta{Name: "pg", Namespace: "ns", Backend: "sized", Type: Loopfile, Size: 8 << 20, Labels: map[string]string{"team": "db"}}
	hdr, err := volumeHeader(m)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	body := []byte("content")
	if err := tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ours := b.Bytes()
	foreign := tarOf(t, &tar.Header{Name: "plain", Typeflag: tar.TypeReg})
	for _, tc := range []struct {
		name   string
		stream []byte
		want   *Meta
	}{
		{"export", ours, &m},
		{"another tar", foreign, nil},
		{"not a tar", []byte("hello, not a tar"), nil},
		{"empty", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time: whatever tar reads to find the metadata
			// must come back.
			got, again := PeekExport(iotest.OneByteReader(bytes.NewReader(tc.stream)))
			switch {
			case tc.want == nil && got != nil:
				t.Errorf("metadata %+v from a stream that carries none", got)
			case tc.want != nil && (got == nil || got.Backend != tc.want.Backend || got.Size != tc.want.Size || got.Labels["team"] != "db"):
				t.Errorf("metadata = %+v, want %+v", got, tc.want)
			}
			all, err := io.ReadAll(again)
			if err != nil || !bytes.Equal(all, tc.stream) {
				t.Errorf("the stream read again differs from the original (%d bytes, want %d): %v", len(all), len(tc.stream), err)
			}
		})
	}
}
