package volumes

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// metaSeeds are volume.json files as WriteMeta writes them, and others that
// the fast decoder must leave to encoding/json.
func metaSeeds() []string {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var seeds []string
	for _, m := range []Meta{
		{},
		{Name: "v", Namespace: "ns", Backend: "local", Type: Dir, Created: at, Class: "web"},
		{Name: "v", Namespace: "ns", Tenant: "team", Backend: "sized", Type: Loopfile, Size: 1 << 30, Overcommit: true, Created: at,
			LastAttached: at.Add(time.Hour), LastHolder: "c1", Labels: map[string]string{"a": "1", "b": ""}},
		{Name: "v", Labels: map[string]string{}},
		{Name: "vm", Image: &Image{Name: "app:1", ChainID: "sha256:1"}, Lower: "/l1:/l2",
			ImageChanges: []ImageChange{{From: Image{ChainID: "sha256:0"}, To: Image{ChainID: "sha256:1"}, At: at}}},
		{Name: "ünïcode", Labels: map[string]string{"k": "tab\there \"quoted\" <html>"}},
		{Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+1800))},
	} {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			panic(err)
		}
		c, _ := json.Marshal(m)
		seeds = append(seeds, string(b)+"\n", string(c))
	}
	return append(seeds,
		``, `{`, `{}`, ` {} `, `{} x`, `[]`, `null`, `{"name":null}`, `{"name":"a","name":"b"}`,
		`{"Name":"x"}`, `{"name":"x",}`, `{"size":01}`, `{"size":-1}`, `{"size":1e3}`, `{"size":1.0}`,
		`{"size":18446744073709551616}`, `{"size":"12"}`, `{"overcommit":truex}`, `{"overcommit":1}`,
		`{"created":"2026-13-01T00:00:00Z"}`, `{"created":"2026-01-01T00:00:00"}`, `{"created":""}`,
		`{"labels":{"a":"1"},"labels":{"b":"2"}}`, `{"labels":{"a":1}}`, `{"labels":null}`,
		`{"unknown":"x","name":"y"}`, `{"name":"a\u0062"}`, "{\"name\":\"\xff\"}", `{"name":"a"}{}`)
}

// TestDecodeMetaLikeEncodingJSON: what decodeMeta makes of a volume.json,
// value or error, is what json.Unmarshal makes of it.
func TestDecodeMetaLikeEncodingJSON(t *testing.T) {
	for _, s := range metaSeeds() {
		checkDecodeMeta(t, []byte(s))
	}
	// The common files take the fast path.
	for _, s := range metaSeeds()[2:6] {
		var m Meta
		if !fastMeta([]byte(s), &m) {
			t.Errorf("the fast decoder left %s to encoding/json", s)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, s := range metaSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(checkDecodeMeta)
}

func checkDecodeMeta(t *testing.T, b []byte) {
	var got, want Meta
	err := decodeMeta(b, &got)
	wantErr := json.Unmarshal(b, &want)
	if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
		t.Fatalf("decodeMeta(%q): error %v, encoding/json's %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeMeta(%q) =\n %#v\nencoding/json:\n %#v", strings.TrimSpace(string(b)), got, want)
	}
}
