package shim

import (
	"fmt"
	"sync"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/containerd-persist/containerd-persist/config"
)

// runtimeOptions is what a task's options carry: runc's own options, passed
// on to the runc task service, or ours, naming the config.
type runtimeOptions struct {
	runc       *anypb.Any
	configPath string
	configBody string
}

// splitOptions decodes the options of a create request. runc's service
// asserts its own type on whatever it is given, so ours must never reach it.
func splitOptions(a typeurl.Any) (runtimeOptions, error) {
	if a == nil || len(a.GetValue()) == 0 && a.GetTypeUrl() == "" {
		return runtimeOptions{}, nil
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return runtimeOptions{}, fmt.Errorf("decode runtime options %s: %w", a.GetTypeUrl(), err)
	}
	switch o := v.(type) {
	case *options.Options:
		pb, err := typeurl.MarshalAnyToProto(o)
		return runtimeOptions{runc: pb}, err
	case *runtimeoptions.Options:
		return runtimeOptions{configPath: o.ConfigPath, configBody: string(o.ConfigBody)}, nil
	default:
		return runtimeOptions{}, fmt.Errorf("runtime options of type %T are not supported: give a config with --runtime-config-path or the CRI handler's ConfigPath", v)
	}
}

// configs parses each distinct config once per shim process: a grouped shim
// serves a whole pod, and parsing is off the start path after the first.
type configs struct {
	systemPath string
	mu         sync.Mutex
	loaded     map[[2]string]*config.Config
}

func (c *configs) load(o runtimeOptions) (*config.Config, error) {
	key := [2]string{o.configPath, o.configBody}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg, ok := c.loaded[key]; ok {
		return cfg, nil
	}
	cfg, err := config.Load(o.configPath, o.configBody, c.systemPath)
	if err != nil {
		return nil, err
	}
	if c.loaded == nil {
		c.loaded = map[[2]string]*config.Config{}
	}
	c.loaded[key] = cfg
	return cfg, nil
}
