package config

import (
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// lineIndex maps each key of a document to the line it is written on, so a
// problem found after decoding can still point at the file. Keys are dotted
// paths as validation names them: classes.web.scratch[1].path.
type lineIndex struct {
	lines map[string]int
	keys  map[position]string // where each key starts -> its path
}

type position struct{ line, column int }

// indexLines walks the document's tables, array tables and key-values. A
// syntax error stops it early; decoding reports that error itself.
func indexLines(data []byte) *lineIndex {
	x := &lineIndex{lines: map[string]int{}, keys: map[position]string{}}
	var p unstable.Parser
	p.Reset(data)
	counts := map[string]int{} // array-table path -> entries seen so far
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = resolveHeader(keyParts(e), counts, e.Kind == unstable.ArrayTable)
			x.add(&p, table, firstKey(e))
		case unstable.KeyValue:
			x.addKeyValue(&p, table, e)
		}
	}
	return x
}

// resolveHeader turns a header's key parts into a path. A part that names an
// array of tables refers to its latest entry, as TOML says; a new [[entry]]
// adds one.
func resolveHeader(parts []string, counts map[string]int, arrayTable bool) string {
	path := ""
	for i, part := range parts {
		path = join(path, part)
		if i == len(parts)-1 && arrayTable {
			counts[path]++
		}
		if n := counts[path]; n > 0 {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
	}
	return path
}

// addKeyValue records a key-value and, for inline tables and arrays of
// inline tables, the keys inside them.
func (x *lineIndex) addKeyValue(p *unstable.Parser, table string, kv *unstable.Node) {
	path := join(table, strings.Join(keyParts(kv), "."))
	x.add(p, path, firstKey(kv))
	value := kv.Value()
	switch value.Kind {
	case unstable.InlineTable:
		x.addInline(p, path, value)
	case unstable.Array:
		it := value.Children()
		for i := 0; it.Next(); i++ {
			if elem := it.Node(); elem.Kind == unstable.InlineTable {
				x.addInline(p, fmt.Sprintf("%s[%d]", path, i), elem)
			}
		}
	}
}

func (x *lineIndex) addInline(p *unstable.Parser, path string, table *unstable.Node) {
	it := table.Children()
	for first := true; it.Next(); first = false {
		kv := it.Node()
		if _, ok := x.lines[path]; first && !ok {
			x.lines[path] = lineOf(p, firstKey(kv)) // an array entry has no key of its own
		}
		x.addKeyValue(p, path, kv)
	}
}

// add keeps the first line a key appears on: a table may be extended later
// by dotted keys, but its header is where an operator looks for it.
func (x *lineIndex) add(p *unstable.Parser, path string, key *unstable.Node) {
	start := p.Shape(key.Raw).Start
	x.keys[position{start.Line, start.Column}] = path
	if _, ok := x.lines[path]; !ok {
		x.lines[path] = start.Line
	}
}

// line returns the line of key, or of its nearest written parent: a missing
// classes.web.mode points at [classes.web]. 0 means nowhere in the file.
func (x *lineIndex) line(key string) int {
	for key != "" {
		if l, ok := x.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// keyAt names the key go-toml reports at a position. Its keys have no array
// indexes (and inside inline arrays lose the array's name), so the index's
// path for a key starting there is preferred, then one on the same line.
func (x *lineIndex) keyAt(line, column int, key []string) string {
	if path, ok := x.keys[position{line, column}]; ok {
		return path
	}
	want := strings.Join(key, ".")
	for path, l := range x.lines {
		if l == line && withoutIndexes(path) == want {
			return path
		}
	}
	return want
}

// withoutIndexes drops every array index ("[" digits "]") from a path:
// classes.web.scratch[1].path becomes classes.web.scratch.path. It does what
// regexp `\[\d+\]` replaced by "" did, checked by hand: a regexp compiled at
// package init costs every exec of the shim, three per container.
func withoutIndexes(path string) string {
	if strings.IndexByte(path, '[') < 0 {
		return path
	}
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); {
		if path[i] == '[' {
			j := i + 1
			for j < len(path) && '0' <= path[j] && path[j] <= '9' {
				j++
			}
			if j > i+1 && j < len(path) && path[j] == ']' {
				i = j + 1
				continue
			}
		}
		b.WriteByte(path[i])
		i++
	}
	return b.String()
}

func keyParts(n *unstable.Node) []string {
	var parts []string
	it := n.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

func firstKey(n *unstable.Node) *unstable.Node {
	it := n.Key()
	it.Next()
	return it.Node()
}

func lineOf(p *unstable.Parser, n *unstable.Node) int {
	return p.Shape(n.Raw).Start.Line
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}
