package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// FuzzParse: any input is either a config that survives a marshal and parse
// round trip, or a one-line *Error naming at least one problem.
func FuzzParse(f *testing.F) {
	f.Add(DefaultTOML)
	f.Add([]byte("version = 1\ndefault_class = \"a\"\n[classes.a]\nmode = \"immutable\"\n"))
	f.Add([]byte("version = 1\n[classes.a]\nmode = \"machine\"\nbackend = \"x\"\nname = \"{k8s.pod}-{name}\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz")
		if err != nil {
			var cerr *Error
			if !errors.As(err, &cerr) || len(cerr.Problems) == 0 {
				t.Fatalf("error is not a *Error with problems: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
		if _, err := Parse(out, "fuzz round trip"); err != nil {
			t.Fatalf("a parsed config does not parse again: %v\n%s", err, out)
		}
	})
}

// FuzzParseSize: a parsed size is positive and reads back from its string.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"64MiB", "1g", "10 GiB", "0", "-1k", "18446744073709551615", "9999999TiB", "1.5GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		size, err := ParseSize(s)
		if err != nil {
			return
		}
		if size == 0 {
			t.Fatalf("ParseSize(%q) = 0 without an error", s)
		}
		again, err := ParseSize(size.String())
		if err != nil || again != size {
			t.Fatalf("ParseSize(%q) = %d, but its String %q reads back as %d, %v", s, size, size.String(), again, err)
		}
	})
}

// FuzzExpand: a template that checks expands with every placeholder
// replaced, whatever the values.
func FuzzExpand(f *testing.F) {
	f.Add("{name}-data", "db1")
	f.Add("{k8s.namespace}.{k8s.pod}", "../x")
	f.Add("{{name}}", "a")
	f.Add("x}{", "")
	f.Fuzz(func(t *testing.T, template, value string) {
		vars := map[string]string{}
		for _, v := range TemplateVars {
			vars[v] = value
		}
		got, err := Expand(template, vars)
		if CheckTemplate(template) != nil {
			if err == nil {
				t.Fatalf("Expand(%q) accepted a template CheckTemplate refuses", template)
			}
			return
		}
		if value == "" {
			return
		}
		if err != nil {
			t.Fatalf("Expand(%q) with all vars set: %v", template, err)
		}
		for _, v := range TemplateVars {
			if strings.Contains(got, "{"+v+"}") && !strings.Contains(value, "{"+v+"}") {
				t.Fatalf("Expand(%q) = %q left {%s}", template, got, v)
			}
		}
	})
}
