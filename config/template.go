package config

import (
	"fmt"
	"slices"
	"strings"
)

// TemplateVars are the placeholders a name template may use, in the order
// they are documented. The shim fills them from the container:
// {name} from the persist.containerd.io/name annotation (default: the
// container ID), {namespace} the containerd namespace, {container} the
// container ID, and the k8s.* ones from the CRI sandbox annotations.
var TemplateVars = []string{"name", "namespace", "container", "k8s.namespace", "k8s.pod", "k8s.container"}

// Expand replaces each {placeholder} in template with vars[placeholder].
// A placeholder whose value is missing or empty is an error rather than an
// empty string, so "{k8s.pod}-data" cannot silently become "-data" and be
// shared by every container that is not in a pod.
func Expand(template string, vars map[string]string) (string, error) {
	var b strings.Builder
	err := walkTemplate(template, func(literal, placeholder string) error {
		b.WriteString(literal)
		if placeholder == "" {
			return nil
		}
		v := vars[placeholder]
		if v == "" {
			return fmt.Errorf("name template %q: {%s} has no value for this container", template, placeholder)
		}
		b.WriteString(v)
		return nil
	})
	if err != nil {
		return "", err
	}
	return b.String(), nil
}

// CheckTemplate checks the braces and placeholder names of a template
// without expanding it, so a config can be checked before any container.
func CheckTemplate(template string) error {
	return walkTemplate(template, func(string, string) error { return nil })
}

// walkTemplate calls fn for each run of literal text, with the placeholder
// that follows it ("" after the last run). Braces never nest and there is no
// escape: names cannot contain braces anyway.
func walkTemplate(template string, fn func(literal, placeholder string) error) error {
	rest := template
	for rest != "" {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			return fn(rest, "")
		}
		if rest[open] == '}' {
			return fmt.Errorf("name template %q: \"}\" without \"{\"; placeholders are written like {name}", template)
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] == '{' {
			return fmt.Errorf("name template %q: \"{\" is not closed; placeholders are written like {name}", template)
		}
		placeholder := rest[open+1 : open+1+end]
		if !slices.Contains(TemplateVars, placeholder) {
			return fmt.Errorf("name template %q: unknown placeholder {%s}; use {%s}", template, placeholder, strings.Join(TemplateVars, "}, {"))
		}
		if err := fn(rest[:open], placeholder); err != nil {
			return err
		}
		rest = rest[open+1+end+1:]
	}
	return nil
}
