package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
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
	for _, c := range kinds {
		for _, t := range tasks[c.Name] {
			shim, err := parentPID(int(t.Pid()))
			if err != nil {
				return err
			}
			kib, err := vmRSS(shim)
			if err != nil {
				return err
			}
			rss[c.Name] = append(rss[c.Name], float64(kib)/1024)
		}
	}
	r.setMemory(kinds, rss)
	return nil
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

// vmRSS reads a process's resident set size in KiB.
func vmRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
