package shim

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// FuzzAnnotations: whatever a container's annotations say, a class is picked
// only if it exists and may be picked (or is the default), and a volume name that passes
// validation is one plain path component.
func FuzzAnnotations(f *testing.F) {
	f.Add("vm", "db-1", "default", "c1")
	f.Add("web", "../../etc", "k8s.io", "x")
	f.Add("", "a/b", "", "")
	f.Add("vm", strings.Repeat("a", 64), "ns", "id")
	cfg := config.Default()
	f.Fuzz(func(t *testing.T, class, name, namespace, id string) {
		ann := map[string]string{AnnotationClass: class, AnnotationName: name, criSandboxName: name}
		c, err := resolveClass(cfg, ann)
		if err == nil && !c.Selectable && c.Name != cfg.DefaultClass {
			t.Fatalf("class %q was picked by annotation but is neither selectable nor the default", class)
		}
		vars := templateVars(ann, namespace, id)
		for _, tmpl := range []string{"{name}", "{k8s.pod}-data", "{namespace}.{container}"} {
			got, err := config.Expand(tmpl, vars)
			if err != nil || volumes.ValidateName(got) != nil {
				continue
			}
			if filepath.Base(got) != got || got == "." || got == ".." || strings.ContainsAny(got, "/\x00") {
				t.Fatalf("volume name %q from %q passed validation", got, tmpl)
			}
		}
	})
}
