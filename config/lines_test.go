package config

import "testing"

func TestLineIndex(t *testing.T) {
	idx := indexLines([]byte(`version = 1
[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
[[classes.web.scratch]]
path = "/var/tmp"
[classes.db]
volumes = [
  { path = "/a", name = "x" },
  { path = "/b",
    name = "y" },
]
root.size = "1g"
[classes.db.extra]
x = { y = 1 }
`))
	for _, tc := range []struct {
		key  string
		line int
	}{
		{"version", 1},
		{"classes.web", 2},
		{"classes.web.mode", 3},
		{"classes.web.scratch[0]", 4},
		{"classes.web.scratch[0].path", 5},
		{"classes.web.scratch[1].path", 7},
		{"classes.web.scratch[1].size", 6}, // absent: its entry's header
		{"classes.web.selectable", 2},      // absent: its table's header
		{"classes.db.volumes", 9},
		{"classes.db.volumes[0].name", 10},
		{"classes.db.volumes[1].path", 11},
		{"classes.db.volumes[1].name", 12},
		{"classes.db.root.size", 14},
		{"classes.db.extra.x.y", 16},
		{"state_dir", 0},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := idx.line(tc.key); got != tc.line {
				t.Fatalf("line(%q) = %d, want %d", tc.key, got, tc.line)
			}
		})
	}
	// go-toml reports keys without array indexes; the position finds them.
	if got := idx.keyAt(11, 5, []string{"classes", "db", "path"}); got != "classes.db.volumes[1].path" {
		t.Fatalf("keyAt(11, 5) = %q", got)
	}
	if got := idx.keyAt(7, 9, []string{"classes", "web", "scratch", "path"}); got != "classes.web.scratch[1].path" {
		t.Fatalf("keyAt(7, 9) = %q, want the entry on that line", got)
	}
	if got := idx.keyAt(99, 1, []string{"a", "b"}); got != "a.b" {
		t.Fatalf("keyAt(99, 1) = %q, want go-toml's key", got)
	}
}
