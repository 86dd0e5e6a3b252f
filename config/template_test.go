package config

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{
		"name": "db1", "namespace": "default", "container": "c1",
		"k8s.namespace": "prod", "k8s.pod": "pg-0", "k8s.container": "postgres",
	}
	for _, tc := range []struct{ template, want string }{
		{"{name}", "db1"},
		{"{name}-data", "db1-data"},
		{"data", "data"},
		{"{namespace}.{container}", "default.c1"},
		{"{k8s.namespace}-{k8s.pod}-{k8s.container}", "prod-pg-0-postgres"},
		{"{name}{name}", "db1db1"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			got, err := Expand(tc.template, vars)
			if err != nil {
				t.Fatalf("Expand(%q): %v", tc.template, err)
			}
			if got != tc.want {
				t.Fatalf("Expand(%q) = %q, want %q", tc.template, got, tc.want)
			}
			if err := CheckTemplate(tc.template); err != nil {
				t.Fatalf("CheckTemplate(%q): %v", tc.template, err)
			}
		})
	}
}

func TestExpandBad(t *testing.T) {
	vars := map[string]string{"name": "db1", "k8s.pod": ""}
	for _, tc := range []struct {
		template string
		check    bool // CheckTemplate refuses it too
		want     string
	}{
		{"{nam}", true, "unknown placeholder {nam}; use {name}, {namespace}"},
		{"{NAME}", true, "unknown placeholder {NAME}"},
		{"{}", true, "unknown placeholder {}"},
		{"{name", true, `"{" is not closed`},
		{"{na{name}", true, `"{" is not closed`},
		{"name}", true, `"}" without "{"`},
		{"{name}}", true, `"}" without "{"`},
		{"{namespace}-x", false, `{namespace} has no value`},
		{"{k8s.pod}-data", false, `{k8s.pod} has no value`},
	} {
		t.Run(tc.template, func(t *testing.T) {
			got, err := Expand(tc.template, vars)
			if err == nil {
				t.Fatalf("Expand(%q) = %q, want an error", tc.template, got)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.template) {
				t.Fatalf("Expand(%q) error %q should name the template and contain %q", tc.template, err, tc.want)
			}
			if err := CheckTemplate(tc.template); (err != nil) != tc.check {
				t.Fatalf("CheckTemplate(%q) = %v, want error: %v", tc.template, err, tc.check)
			}
		})
	}
}
