package config

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLoad times what a shim pays on every create to read its config:
// the file that the runtime options name, here the design's example with
// its four classes.
//
//	go test ./config -run '^$' -bench Load
func BenchmarkLoad(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "design.toml"))
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "persist.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Load(path, "", ""); err != nil {
			b.Fatal(err)
		}
	}
}
