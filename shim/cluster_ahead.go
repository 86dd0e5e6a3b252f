package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/containerd-persist/containerd-persist/cluster/hold"
	"github.com/containerd-persist/containerd-persist/config"
)

// `shim start` asks the node's cluster agent for its container's cluster
// locks, for the daemon it starts: the daemon's own request, from its
// read-ahead (see cluster_early.go), then claims the lock taken ahead. A
// daemon takes 10-20 ms from its exec to its first line, which the lock's
// etcd transaction then fits in, rather than in the wait for Create.
//
// It is best effort and costs the start no wait: the spec and config are
// read while runc's manager starts the daemon, and the requests are sent
// only if they are named by the time it has, without waiting for an
// answer, and only when an agent serves already. A lock
// that no daemon claims is released by the agent; nothing is mounted under
// it before the daemon asks for it.

// lockingAhead is the cluster locks of one `shim start`, being named.
type lockingAhead struct {
	done     chan struct{}
	socket   string
	attaches []*clusterAttach
}

// startLockAhead names, in the background, the cluster locks of the
// container that params starts, whose bundle is the working directory.
func startLockAhead(ctx context.Context, params *bootapi.BootstrapParams) *lockingAhead {
	var o runtimeoptions.Options
	if found, err := params.FindExtension(&o); err != nil || !found {
		return nil
	}
	body := o.ConfigBody
	if o.ConfigPath != "" {
		var err error
		if body, err = os.ReadFile(o.ConfigPath); err != nil {
			return nil
		}
	}
	if !bytes.Contains(body, []byte("cluster")) {
		return nil // no [cluster]: not a process's worth of work to find out
	}
	ns, ok := namespaces.Namespace(ctx)
	if !ok {
		return nil
	}
	bundle, err := os.Getwd()
	if err != nil {
		return nil
	}
	l := &lockingAhead{done: make(chan struct{})}
	go func() {
		defer close(l.done)
		spec, err := readSpec(bundle)
		if err != nil || spec.Annotations[criContainerType] == "sandbox" {
			return
		}
		cfg, err := (&configs{systemPath: config.SystemPath}).load(runtimeOptions{configPath: o.ConfigPath, configBody: string(o.ConfigBody)})
		if err != nil || cfg.Cluster == nil {
			return
		}
		class, err := resolveClass(cfg, spec.Annotations)
		if err != nil {
			return
		}
		c := &container{namespace: ns, id: filepath.Base(bundle), bundle: bundle, spec: spec.Spec}
		l.attaches = newStorage("", nil).clusterAttaches(c, cfg, class)
	}()
	return l
}

// send asks the agent for the locks, for the daemon that start started: the
// one child of this process.
func (l *lockingAhead) send() {
	if l == nil {
		return
	}
	select {
	case <-l.done:
	default:
		return // not named yet: the daemon asks for them, this start does not wait
	}
	if len(l.attaches) == 0 {
		return
	}
	pid := onlyChild()
	if pid <= 0 {
		return // a grouped shim that runs already: its Create asks
	}
	reqs := make([]hold.Request, len(l.attaches))
	for i, a := range l.attaches {
		a.since = time.Now().UTC()
		reqs[i] = a.request(pid)
	}
	hold.Ahead(l.attaches[0].socket(), reqs) // best effort
}

// onlyChild is the PID of this process's one child, or 0 when it has none
// or more than one (proc(5): /proc/[pid]/task/[tid]/children).
func onlyChild() int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var pids []string
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", t.Name(), "children"))
		if err != nil {
			return 0
		}
		pids = append(pids, strings.Fields(string(b))...)
	}
	if len(pids) != 1 {
		return 0
	}
	pid, _ := strconv.Atoi(pids[0])
	return pid
}
