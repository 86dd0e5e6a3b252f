package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check the kernel and host for what containerd-persist needs, and say what is missing (exit 1 if anything is)",
		Description: "The shim and runc are checked as containerd sees them: containerd is asked, through its introspection\n" +
			"service, whether it can run runtime " + runtimeName + "; it runs the shim found on its own PATH, which reports\n" +
			"the runc containers get. Each runc version is told what it lacks: runc before 1.2.8, 1.3.3 and 1.4.0 lacks\n" +
			"the fixes for container escapes through races on its mounts (CVE-2025-31133, CVE-2025-52565, CVE-2025-52881),\n" +
			"which fails; 1.2.8 and later 1.2 work but are older than the tested 1.3, which warns.",
		Flags: []cli.Flag{jsonFlag,
			&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Value: "/run/containerd/containerd.sock", EnvVars: []string{"CONTAINERD_ADDRESS"}, Usage: "containerd's `SOCKET`"}},
		Action: doctor,
	}
}

// check is one line of doctor: OK, or what to do. A warning is OK, but
// says what the operator chose and what it risks.
type check struct {
	Name    string `json:"check"`
	OK      bool   `json:"ok"`
	Warning bool   `json:"warning,omitempty"`
	Message string `json:"message"`
}

// Versions this release is built and tested against (DESIGN.md).
var (
	minContainerd = [2]int{2, 3}
	testedRunc    = [2]int{1, 3}
)

func doctor(c *cli.Context) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	cfg, cfgErr := loadConfig(c)
	filesystems, fsErr := os.ReadFile("/proc/filesystems")
	hasFS := func(name, fix string) func() check {
		return func() check {
			if fsErr != nil {
				return failed(fsErr)
			}
			for _, line := range strings.Split(string(filesystems), "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == name {
					return passed("")
				}
			}
			return failed(fmt.Errorf("the kernel has no %s: %s", name, fix))
		}
	}
	rt := askRuntime(c.Context, c.String("address"))
	checks := []struct {
		name string
		fn   func() check
	}{
		{"overlayfs", hasFS("overlay", "run modprobe overlay, or use a kernel with CONFIG_OVERLAY_FS")},
		{"tmpfs", hasFS("tmpfs", "use a kernel with CONFIG_TMPFS")},
		{"ext4", hasFS("ext4", "run modprobe ext4: loopfile volumes and disk scratch are ext4 images")},
		{"loop devices", checkLoop},
		{"mkfs.ext4", func() check {
			p, err := exec.LookPath("mkfs.ext4")
			if err != nil {
				return failed(errors.New("mkfs.ext4 is not on PATH: install e2fsprogs"))
			}
			return passed(p)
		}},
		{"containerd", func() check { return outcome(rt.containerd, rt.containerdErr) }},
		{"runc", func() check { return checkRunc(rt) }},
		{"shim", func() check { return checkShim(rt) }},
		{"config", func() check {
			if cfgErr != nil {
				return failed(fmt.Errorf("%v: run persistctl config check", cfgErr))
			}
			return passed(cfg.Source)
		}},
	}
	var results []check
	anyFailed := false
	for _, ch := range checks {
		r := ch.fn()
		r.Name = ch.name
		anyFailed = anyFailed || !r.OK
		results = append(results, r)
	}
	if cfgErr == nil {
		results = append(results, overcommitChecks(cfg)...)
	}
	if c.Bool("json") {
		if err := printJSON(c, results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			msg := r.Message
			if r.Warning {
				msg = "warning: " + msg
			}
			fmt.Fprintf(c.App.Writer, "%-13s %s\n", r.Name+":", msg)
		}
	}
	if anyFailed {
		return exitSilently
	}
	return nil
}

func passed(msg string) check {
	if msg == "" {
		return check{OK: true, Message: "ok"}
	}
	return check{OK: true, Message: "ok: " + msg}
}

func failed(err error) check { return check{Message: err.Error()} }

func warned(msg string) check { return check{OK: true, Warning: true, Message: msg} }

func outcome(msg string, err error) check {
	if err != nil {
		return failed(err)
	}
	return passed(msg)
}

// overcommitChecks warns of each backend that overcommits: its volumes'
// space is not reserved, so a full backend shows up in containers as I/O
// errors instead of ENOSPC (DESIGN.md, Space).
func overcommitChecks(cfg *config.Config) []check {
	var out []check
	for _, name := range slices.Sorted(maps.Keys(cfg.Backends)) {
		if b := cfg.Backends[name]; b.Overcommit {
			out = append(out, check{Name: "overcommit", OK: true, Warning: true, Message: fmt.Sprintf(
				"backend %s overcommits: its volume images are sparse, and when %s fills up their containers get I/O errors and read-only filesystems; remove overcommit = true to reserve their space",
				b.Name, b.Path)})
		}
	}
	if len(out) == 0 {
		out = append(out, check{Name: "overcommit", OK: true, Message: "ok: every sized volume and scratch area has its space reserved"})
	}
	return out
}

func checkLoop() check {
	fi, err := os.Stat("/dev/loop-control")
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return failed(errors.New("/dev/loop-control is missing: run modprobe loop (in a container, pass the host's /dev/loop-control and loop devices)"))
	}
	return passed("")
}
