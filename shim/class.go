package shim

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/config"
)

// Annotations that a container's OCI spec may carry.
const (
	AnnotationClass = "persist.containerd.io/class"
	AnnotationName  = "persist.containerd.io/name"
)

// CRI annotations that feed the k8s name template values.
const (
	criSandboxNamespace = "io.kubernetes.cri.sandbox-namespace"
	criSandboxName      = "io.kubernetes.cri.sandbox-name"
	criContainerName    = "io.kubernetes.cri.container-name"
	criContainerType    = "io.kubernetes.cri.container-type"
)

// resolveClass picks the class of a container: the class annotation if it
// names a selectable class, else the config's default_class.
func resolveClass(cfg *config.Config, annotations map[string]string) (*config.Class, error) {
	name, asked := annotations[AnnotationClass]
	if !asked {
		name = cfg.DefaultClass
	}
	class, ok := cfg.Class(name)
	if !ok {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("class %q is not in config %s (classes: %s): pick one of them in %s",
			name, cfg.Source, strings.Join(cfg.ClassNames(), ", "), AnnotationClass))
	}
	if asked && !class.Selectable {
		return nil, errdefs.ErrPermissionDenied.WithMessage(fmt.Sprintf(
			"class %q may not be picked by annotation: set selectable = true on it in config %s", name, cfg.Source))
	}
	return class, nil
}

// templateVars are the values of the name templates for one container.
func templateVars(annotations map[string]string, namespace, id string) map[string]string {
	name := annotations[AnnotationName]
	if name == "" {
		name = id
	}
	return map[string]string{
		"name":          name,
		"namespace":     namespace,
		"container":     id,
		"k8s.namespace": annotations[criSandboxNamespace],
		"k8s.pod":       annotations[criSandboxName],
		"k8s.container": annotations[criContainerName],
	}
}
