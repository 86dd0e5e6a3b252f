package shim

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
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

// nerdctlName is where nerdctl puts the container's --name.
const nerdctlName = "nerdctl/name"

// resolveClass picks the class of a container: the class annotation if it
// names a selectable class or the default one, else the config's
// default_class.
func resolveClass(cfg *config.Config, annotations map[string]string) (*config.Class, error) {
	name, asked := annotations[AnnotationClass]
	if !asked {
		name = cfg.DefaultClass
	}
	class, ok := cfg.Class(name)
	if !ok {
		return nil, fmt.Errorf("%w: class %s is not in config %s (classes: %s): pick one of them in %s",
			errdefs.ErrNotFound, volumes.Quote(name), cfg.Source, strings.Join(cfg.ClassNames(), ", "), AnnotationClass)
	}
	// Naming the default class asks for nothing more than no annotation.
	if asked && !class.Selectable && name != cfg.DefaultClass {
		return nil, fmt.Errorf("%w: class %s may not be picked by annotation: set selectable = true on it in config %s",
			errdefs.ErrPermissionDenied, volumes.Quote(name), cfg.Source)
	}
	return class, nil
}

// templateVars are the values of the name templates for one container.
func templateVars(annotations map[string]string, namespace, id string) map[string]string {
	return map[string]string{
		"name":          defaultName(annotations, id),
		"namespace":     namespace,
		"container":     id,
		"k8s.namespace": annotations[criSandboxNamespace],
		"k8s.pod":       annotations[criSandboxName],
		"k8s.container": annotations[criContainerName],
	}
}

// defaultName is the {name} of a container: what it asks for, else the name
// its client gave it, else the container ID. Under CRI that is the pod's and
// the container's names, which stay when Kubernetes re-creates the
// container; "_" is in neither, so no two pairs give one name.
func defaultName(annotations map[string]string, id string) string {
	if name := annotations[AnnotationName]; name != "" {
		return name
	}
	if name := annotations[nerdctlName]; name != "" {
		return name
	}
	pod, container := annotations[criSandboxName], annotations[criContainerName]
	if pod != "" && container != "" {
		return pod + "_" + container
	}
	return id
}

// tenantOf is the tenant of a container's volumes: under CRI, the pod's
// Kubernetes namespace, which containerd's CRI sets itself; no tenant
// elsewhere. A pod cannot set it: CRI writes its own annotations over any
// the pod carries.
func tenantOf(annotations map[string]string) string {
	return annotations[criSandboxNamespace]
}
