package config

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"github.com/docker/go-units"
)

// Size is a byte count, written in the config like "64MiB" or "10g".
// Zero means "not set"; a config that writes a zero size is refused.
type Size uint64

// Binary units only: a "GB" that is 10^9 here and 2^30 in df would make
// quotas that surprise someone either way, so decimal units are refused.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10},
	{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10},
	{"t", 40}, {"g", 30}, {"m", 20}, {"k", 10},
	{"B", 0},
}

const sizeHint = "use a number with KiB, MiB, GiB or TiB, like 64MiB"

// ParseSize parses a positive whole number of bytes with an optional binary
// unit: B, KiB, MiB, GiB, TiB, or k, m, g, t (either case).
func ParseSize(s string) (Size, error) {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, shift = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.shift
			break
		}
	}
	bad := func(why string) error { return fmt.Errorf("%q is not a size: %s", s, why) }
	switch {
	case num == "":
		return 0, bad(sizeHint)
	case num[0] == '-':
		return 0, bad("size must be greater than zero")
	case strings.Contains(num, ".") && strings.Trim(num, "0123456789.") == "":
		return 0, bad("use a whole number, like 1536MiB rather than 1.5GiB")
	case strings.Trim(num, "0123456789") != "":
		return 0, bad(sizeHint)
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, bad("too large: a size must fit in 64 bits") // only digits are left: a range error
	}
	if n == 0 {
		return 0, bad("size must be greater than zero")
	}
	if hi, _ := bits.Mul64(n, 1<<shift); hi != 0 {
		return 0, bad("too large: a size must fit in 64 bits")
	}
	return Size(n << shift), nil
}

// String writes the size in the largest binary unit that holds it exactly,
// so it parses back to the same number: 67108864 is "64MiB".
func (s Size) String() string {
	for _, u := range sizeUnits[:4] {
		if s != 0 && s%(1<<u.shift) == 0 {
			return strconv.FormatUint(uint64(s>>u.shift), 10) + u.suffix
		}
	}
	return strconv.FormatUint(uint64(s), 10) + "B"
}

func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Size) UnmarshalText(text []byte) error {
	n, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// Approx formats s to four significant digits in the largest binary unit
// below it, like 3.2GiB or 1.234MiB: for messages and tables, where
// String's exact form would be noise.
func (s Size) Approx() string { return units.BytesSize(float64(s)) }
