package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// benchMemory starts sleeping containers of each kind, interleaved, lets
// their shims settle and reads each shim's VmRSS: runc's shim and ours
// serve one container per process, so this is the cost per container.
func benchMemory(ctx context.Context, e *env, r *results) error {
	kinds := []startCase{caseNamed("runc"), caseNamed("imm-mem"), caseNamed("machine-dir")}
	tasks := map[string][]client.Task{}
	var ctns []client.Container
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		for _, c := range ctns {
			deleteContainer(cctx, c)
		}
	}()
	for i := range e.o.RSS {
		for _, c := range kinds {
			id := fmt.Sprintf("rss-%s-%d", c.Name, i)
			volume := ""
			if c.Volume != "" {
				volume = id
			}
			ctn, err := e.newContainer(ctx, c, id, volume, nil, "sleep", "3600")
			if err != nil {
				return fmt.Errorf("create %s: %w", id, err)
			}
			ctns = append(ctns, ctn)
			t, err := ctn.NewTask(ctx, cio.NullIO)
			if err != nil {
				return fmt.Errorf("create task %s: %w", id, err)
			}
			if err := t.Start(ctx); err != nil {
				return fmt.Errorf("start %s: %w", id, err)
			}
			tasks[c.Name] = append(tasks[c.Name], t)
		}
	}
	// Shims allocate while serving the first calls; read them at rest.
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	rss := map[string][]float64{}
	anon := map[string][]float64{}
	pss := map[string][]float64{}
	for _, c := range kinds {
		for _, t := range tasks[c.Name] {
			shim, err := parentPID(int(t.Pid()))
			if err != nil {
				return err
			}
			// Both shims must be the bench's copies (see newEnv).
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", shim)); err != nil || filepath.Dir(exe) != e.shims {
				return fmt.Errorf("the shim of %s runs %q (%v), not the bench's copy in %s", c.Name, exe, err, e.shims)
			}
			m, err := memoryOf(shim)
			if err != nil {
				return err
			}
			rss[c.Name] = append(rss[c.Name], m.rss)
			anon[c.Name] = append(anon[c.Name], m.anon)
			pss[c.Name] = append(pss[c.Name], m.pss)
		}
	}
	r.setMemory(kinds, rss, anon, pss)
	return nil
}

// memory is a process's memory in MiB: VmRSS counts every resident page it
// maps, RssAnon its own, and Pss splits the pages it shares (the binary's
// text, mapped by every shim of one build) among their users.
type memory struct{ rss, anon, pss float64 }

func memoryOf(pid int) (memory, error) {
	var m memory
	status, err := kibFields(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:", "RssAnon:")
	if err != nil {
		return m, err
	}
	rollup, err := kibFields(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
	if err != nil {
		return m, err
	}
	return memory{rss: status[0] / 1024, anon: status[1] / 1024, pss: rollup[0] / 1024}, nil
}

// parentPID is the parent of pid: a container's init is the shim's child.
func parentPID(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends at the last ")".
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return strconv.Atoi(fields[1])
}

// kibFields reads "Key: N kB" lines of a /proc file, in the order of keys.
func kibFields(path string, keys ...string) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := make([]float64, len(keys))
	found := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		for i, k := range keys {
			if v, ok := strings.CutPrefix(s.Text(), k); ok {
				n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", path, k, err)
				}
				vals[i] = float64(n)
				found++
			}
		}
	}
	if found != len(keys) {
		return nil, fmt.Errorf("%s lacks some of %v", path, keys)
	}
	return vals, s.Err()
}
