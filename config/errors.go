package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is what every *Error unwraps to, so callers can classify a bad
// config with errors.Is without this package importing containerd's errdefs.
var ErrInvalid = errors.New("invalid config")

// Problem is one thing wrong with a config: where it is and what to do.
type Problem struct {
	Line int    // 1-based line in the source; 0 when the key is absent
	Key  string // dotted key, with [i] for array entries: classes.web.scratch[0].size
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is a refused config. It lists every problem found, so an operator
// fixes the file in one pass rather than one error per reload.
type Error struct {
	Source   string
	Problems []Problem
}

// Error is one line, because the shim's create error is shown as one line
// by ctr and the kubelet.
func (e *Error) Error() string {
	return fmt.Sprintf("config %s: %s", e.Source, strings.Join(e.Lines(), "; "))
}

// Lines returns one string per problem, for persistctl config check.
func (e *Error) Lines() []string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return lines
}

func (e *Error) Unwrap() error { return ErrInvalid }
