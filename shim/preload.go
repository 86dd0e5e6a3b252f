package shim

import (
	"encoding/base64"
	"os"
	"sync"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"

	"github.com/containerd-persist/containerd-persist/config"
)

// The daemon reads its container's spec and config while containerd
// connects to it and sends Create, rather than on Create's path: a fresh
// process takes about a millisecond for them. The spec is in the bundle,
// the daemon's working directory. The config is named by the task's
// options, which containerd hands `shim start`; start passes them on to the
// daemon it starts in envPreload.

// envPreload carries the task's config options, as an encoded
// runtimeoptions.v1.Options in base64, from `shim start` to the daemon.
const envPreload = "CONTAINERD_PERSIST_PRELOAD"

// maxPreloadEnv bounds what start passes: a larger inline config is loaded
// by Create, as it would be without a preload.
const maxPreloadEnv = 32 << 10

// passPreload, in `shim start`, hands the daemon about to be started the
// config options of the task, if it has ours.
func passPreload(params *bootapi.BootstrapParams) {
	var o runtimeoptions.Options
	if found, err := params.FindExtension(&o); err != nil || !found {
		return
	}
	b, err := proto.Marshal(&o)
	if err != nil || base64.StdEncoding.EncodedLen(len(b)) > maxPreloadEnv {
		return
	}
	os.Setenv(envPreload, base64.StdEncoding.EncodeToString(b))
}

// preloadOptions, in the daemon, takes the options that start passed. They
// are not passed on to runc.
func preloadOptions() (runtimeOptions, bool) {
	v, ok := os.LookupEnv(envPreload)
	if !ok {
		return runtimeOptions{}, false
	}
	os.Unsetenv(envPreload)
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return runtimeOptions{}, false
	}
	var o runtimeoptions.Options
	if err := proto.Unmarshal(b, &o); err != nil {
		return runtimeOptions{}, false
	}
	return runtimeOptions{configPath: o.ConfigPath, configBody: string(o.ConfigBody)}, true
}

// preloaded is the spec of one bundle, read ahead of its Create.
type preloaded struct {
	bundle string
	done   chan struct{} // closed when spec and err are set
	spec   *bundleSpec
	err    error
	idle   chan struct{} // closed when the config is loaded too

	once sync.Once // the spec is taken once: Create changes it
}

// preload reads the spec of bundle and loads its config into cfgs, in the
// background: the one the task's options name, which start passed, or
// else the one Create loads without options. Then, when both could be
// had, it calls then with them.
func preload(bundle string, cfgs *configs, then func(*bundleSpec, *config.Config)) *preloaded {
	p := &preloaded{bundle: bundle, done: make(chan struct{}), idle: make(chan struct{})}
	opts, _ := preloadOptions()
	go func() {
		defer close(p.idle)
		p.spec, p.err = readSpec(bundle)
		close(p.done)
		// A config that fails to load is loaded, and its error reported,
		// by Create: configs keep only those that load.
		cfg, err := cfgs.load(opts)
		if err == nil && p.err == nil && then != nil {
			then(p.spec, cfg)
		}
	}()
	return p
}

// settled waits until preload's work is done, and with it the start of
// what it begins (a storage setup, see startEarly): Create must not start
// a setup of its own beside one just beginning.
func (p *preloaded) settled() {
	if p != nil {
		<-p.idle
	}
}

// take returns the spec read ahead if it is bundle's and was not taken yet.
func (p *preloaded) take(bundle string) (spec *bundleSpec, ok bool) {
	if p == nil || p.bundle != bundle {
		return nil, false
	}
	p.once.Do(func() {
		<-p.done
		spec, ok = p.spec, p.err == nil
	})
	return spec, ok
}
