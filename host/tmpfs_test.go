package host

import (
	"slices"
	"strconv"
	"testing"
)

func TestTmpfsOptions(t *testing.T) {
	for _, c := range []struct {
		size   uint64
		inodes string
	}{
		{64 << 20, "nr_inodes=16384"}, // one per 4KiB page
		{1 << 30, "nr_inodes=262144"},
		{1 << 20, "nr_inodes=1024"}, // the minimum, not 256
		{1, "nr_inodes=1024"},
	} {
		got := TmpfsOptions(c.size)
		want := []string{"size=" + strconv.FormatUint(c.size, 10), c.inodes}
		if !slices.Equal(got, want) {
			t.Errorf("TmpfsOptions(%d) = %q, want %q", c.size, got, want)
		}
	}
}
