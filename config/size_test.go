package config

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{
		{"64MiB", 64 << 20},
		{"1GiB", 1 << 30},
		{"10g", 10 << 30},
		{"10G", 10 << 30},
		{"5k", 5 << 10},
		{"3KiB", 3 << 10},
		{"2m", 2 << 20},
		{"1TiB", 1 << 40},
		{"1t", 1 << 40},
		{"512", 512},
		{"512B", 512},
		{"64 MiB", 64 << 20},
		{"15TiB", 15 << 40},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if err != nil {
				t.Fatalf("ParseSize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseSizeBad(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"", `"" is not a size: use a number with KiB, MiB, GiB or TiB, like 64MiB`},
		{"12XB", `"12XB" is not a size: use a number with KiB, MiB, GiB or TiB, like 64MiB`},
		{"64MB", "use a number with KiB"},
		{"1kb", "use a number with KiB"},
		{"MiB", "use a number with KiB"},
		{"0x10", "use a number with KiB"},
		{"+5", "use a number with KiB"},
		{"-1MiB", "size must be greater than zero"},
		{"0", `"0" is not a size: size must be greater than zero`},
		{"0MiB", "size must be greater than zero"},
		{"1.5GiB", "use a whole number"},
		{"99999999999999999999", "too large"},
		{"16777216TiB", "too large"}, // 2^64
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if err == nil {
				t.Fatalf("ParseSize(%q) = %d, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseSize(%q) error %q does not contain %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   Size
		want string
	}{
		{67108864, "64MiB"},
		{1 << 30, "1GiB"},
		{1536 << 20, "1536MiB"},
		{3 << 10, "3KiB"},
		{2 << 40, "2TiB"},
		{100, "100B"},
		{1<<20 + 1, "1048577B"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Fatalf("Size(%d).String() = %q, want %q", uint64(tc.in), got, tc.want)
			}
			text, err := tc.in.MarshalText()
			if err != nil || string(text) != tc.want {
				t.Fatalf("MarshalText = %q, %v; want %q", text, err, tc.want)
			}
			var back Size
			if err := back.UnmarshalText(text); err != nil || back != tc.in {
				t.Fatalf("UnmarshalText(%q) = %d, %v; want %d", text, back, err, tc.in)
			}
		})
	}
}

// Size is usable in other TOML documents too, for example persistctl flags
// files; a bad size there must fail the decode.
func TestSizeTOML(t *testing.T) {
	var v struct {
		Size Size `toml:"size"`
	}
	if err := toml.Unmarshal([]byte(`size = "10g"`), &v); err != nil || v.Size != 10<<30 {
		t.Fatalf("decode size = \"10g\": %d, %v", v.Size, err)
	}
	if err := toml.Unmarshal([]byte(`size = "10 parsecs"`), &v); err == nil {
		t.Fatal("decode size = \"10 parsecs\": want an error")
	}
	out, err := toml.Marshal(v)
	if err != nil || !strings.Contains(string(out), "10GiB") {
		t.Fatalf("marshal: %q, %v; want 10GiB", out, err)
	}
}

func TestSizeApprox(t *testing.T) {
	for _, c := range []struct {
		in   Size
		want string
	}{{0, "0B"}, {1023, "1023B"}, {1024, "1KiB"}, {1536, "1.5KiB"}, {25165824, "24MiB"}, {3<<30 + 5, "3GiB"}, {3435973837, "3.2GiB"}, {16 << 20, "16MiB"}, {1234567, "1.177MiB"}, {8 << 40, "8TiB"}} {
		if got := c.in.Approx(); got != c.want {
			t.Errorf("Size(%d).Approx() = %q, want %q", uint64(c.in), got, c.want)
		}
	}
}
