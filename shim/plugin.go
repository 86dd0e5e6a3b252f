package shim

import (
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/task"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
)

// Register registers the shim's task service, runc's wrapped, as the
// "task" plugin that shim.RunShim serves. A shim's main calls it once,
// before RunShim.
func Register(opts ...Option) {
	registry.Register(&plugin.Registration{
		Type:     plugins.TTRPCPlugin,
		ID:       "task",
		Requires: []plugin.Type{plugins.EventPlugin, plugins.InternalPlugin},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			// Only the daemon loads plugins: from here to its first
			// Create, it is on the path of a container's start.
			gcHold.hold()
			s := &service{
				configs: &configs{systemPath: config.SystemPath},
				storage: newStorage(ic.Properties[plugins.PropertyGRPCAddress], host.Linux{Monitor: reaper.Default}),
			}
			for _, o := range opts {
				o(s)
			}
			// The container's spec and config are read, and its storage
			// setup begun, while runc's service starts and containerd
			// connects (see preload and startEarly).
			if bundle, err := os.Getwd(); err == nil {
				s.pre = preload(bundle, s.configs, func(spec *bundleSpec, cfg *config.Config) {
					s.storage.startEarly(ic.Context, bundle, spec, cfg)
				})
			}
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			runc, err := task.NewTaskService(ic.Context, pp.(shim.Publisher), ss.(shutdown.Service))
			if err != nil {
				return nil, err
			}
			s.TTRPCTaskService = runc
			return s, nil
		},
	})
}

// Option changes the task service; only test builds of the shim use one.
type Option func(*service)

// Hook is called before step n of a container's storage setup (phase
// "create") or cleanup ("delete"), and once after setup's last step; its
// error stops the phase there. Test builds stop or kill the shim with it
// to prove that every half-done setup and cleanup is undone.
type Hook func(phase string, n int) error

// WithHooks has hooksFor pick each container's Hook from its annotations
// (nil for none); an error fails the container's create.
func WithHooks(hooksFor func(annotations map[string]string) (Hook, error)) Option {
	return func(s *service) { s.storage.hooksFor = hooksFor }
}
