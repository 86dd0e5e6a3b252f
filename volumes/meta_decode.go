package volumes

import (
	"encoding/json"
	"strconv"
	"time"
)

// decodeMeta is json.Unmarshal of a volume.json into m, which must be
// zero. Listing many volumes, encoding/json's reflection was a fifth of the
// time: the flat object that WriteMeta writes is decoded here directly,
// and anything else (an escape, a byte outside ASCII, a key it does not
// know as written, an image, null) is left to encoding/json, which then
// gives what it always gave, errors included.
func decodeMeta(b []byte, m *Meta) error {
	if fastMeta(b, m) {
		return nil
	}
	*m = Meta{}
	return json.Unmarshal(b, m)
}

// fastMeta decodes b into m if b is a flat volume.json, and reports
// whether it did; m is garbage when it did not.
func fastMeta(b []byte, m *Meta) bool {
	d := metaScanner{b: b}
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return d.end()
	}
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return false
		}
		switch key {
		case "name":
			m.Name, ok = d.str()
		case "namespace":
			m.Namespace, ok = d.str()
		case "tenant":
			m.Tenant, ok = d.str()
		case "backend":
			m.Backend, ok = d.str()
		case "type":
			m.Type, ok = d.str()
		case "class":
			m.Class, ok = d.str()
		case "last_holder":
			m.LastHolder, ok = d.str()
		case "lower":
			m.Lower, ok = d.str()
		case "size":
			m.Size, ok = d.uint()
		case "overcommit":
			m.Overcommit, ok = d.bool()
		case "created":
			ok = d.time(&m.Created)
		case "last_attached":
			ok = d.time(&m.LastAttached)
		case "labels":
			ok = m.Labels == nil && d.labels(&m.Labels)
		default:
			return false
		}
		if !ok {
			return false
		}
		if d.byte('}') {
			return d.end()
		}
		if !d.byte(',') {
			return false
		}
	}
}

// metaScanner reads the JSON of a flat volume.json from b at i.
type metaScanner struct {
	b []byte
	i int
}

func (d *metaScanner) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// byte skips space and c, if c is next.
func (d *metaScanner) byte(c byte) bool {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// end reports whether only space is left.
func (d *metaScanner) end() bool {
	d.space()
	return d.i == len(d.b)
}

// raw returns a string's bytes, quotes included, if it has printable
// ASCII alone and no escape.
func (d *metaScanner) raw() ([]byte, bool) {
	d.space()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return nil, false
	}
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			s := d.b[d.i : j+1]
			d.i = j + 1
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

func (d *metaScanner) str() (string, bool) {
	s, ok := d.raw()
	if !ok {
		return "", false
	}
	return string(s[1 : len(s)-1]), true
}

// uint reads a JSON number that is a whole number without sign, fraction
// or exponent, and fits.
func (d *metaScanner) uint() (uint64, bool) {
	d.space()
	j := d.i
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		j++
	}
	digits := d.b[d.i:j]
	if len(digits) == 0 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	if j < len(d.b) && (d.b[j] == '.' || d.b[j] == 'e' || d.b[j] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil {
		return 0, false
	}
	d.i = j
	return n, true
}

func (d *metaScanner) bool() (bool, bool) {
	d.space()
	for _, v := range []bool{true, false} {
		lit := strconv.FormatBool(v)
		if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
			d.i += len(lit)
			return v, true
		}
	}
	return false, false
}

// time reads a time as encoding/json does: with the time's own
// UnmarshalJSON.
func (d *metaScanner) time(t *time.Time) bool {
	s, ok := d.raw()
	return ok && t.UnmarshalJSON(s) == nil
}

// labels reads an object of strings.
func (d *metaScanner) labels(out *map[string]string) bool {
	if !d.byte('{') {
		return false
	}
	m := map[string]string{}
	*out = m
	if d.byte('}') {
		return true
	}
	for {
		k, ok := d.str()
		if !ok || !d.byte(':') {
			return false
		}
		if m[k], ok = d.str(); !ok {
			return false
		}
		if d.byte('}') {
			return true
		}
		if !d.byte(',') {
			return false
		}
	}
}
