package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	versionapi "github.com/containerd/containerd/api/services/version/v1"
	"github.com/urfave/cli/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/containerd-persist/containerd-persist/config"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check the kernel and host for what containerd-persist needs, and say what is missing (exit 1 if anything is)",
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
	minRunc       = [2]int{1, 3}
)

func doctor(c *cli.Context) error {
	if _, err := args(c, 0, 0); err != nil {
		return err
	}
	cfg, cfgErr := loadConfig(c)
	filesystems, fsErr := os.ReadFile("/proc/filesystems")
	hasFS := func(name, fix string) func() (string, error) {
		return func() (string, error) {
			if fsErr != nil {
				return "", fsErr
			}
			for _, line := range strings.Split(string(filesystems), "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == name {
					return "", nil
				}
			}
			return "", fmt.Errorf("the kernel has no %s: %s", name, fix)
		}
	}
	checks := []struct {
		name string
		fn   func() (string, error)
	}{
		{"overlayfs", hasFS("overlay", "run modprobe overlay, or use a kernel with CONFIG_OVERLAY_FS")},
		{"tmpfs", hasFS("tmpfs", "use a kernel with CONFIG_TMPFS")},
		{"ext4", hasFS("ext4", "run modprobe ext4: loopfile volumes and disk scratch are ext4 images")},
		{"loop devices", checkLoop},
		{"mkfs.ext4", func() (string, error) {
			p, err := exec.LookPath("mkfs.ext4")
			if err != nil {
				return "", errors.New("mkfs.ext4 is not on PATH: install e2fsprogs")
			}
			return p, nil
		}},
		{"containerd", func() (string, error) { return checkContainerd(c.Context, c.String("address")) }},
		{"runc", checkRunc},
		{"shim", func() (string, error) {
			p, err := exec.LookPath("containerd-shim-persist-v1")
			if err != nil {
				return "", errors.New("containerd-shim-persist-v1 is not on PATH: install it beside containerd, in a directory on containerd's PATH")
			}
			return p, nil
		}},
		{"config", func() (string, error) {
			if cfgErr != nil {
				return "", fmt.Errorf("%v: run persistctl config check", cfgErr)
			}
			return cfg.Source, nil
		}},
	}
	var results []check
	failed := false
	for _, ch := range checks {
		msg, err := ch.fn()
		r := check{Name: ch.name, OK: err == nil, Message: "ok"}
		if msg != "" {
			r.Message += ": " + msg
		}
		if err != nil {
			r.Message, failed = err.Error(), true
		}
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
	if failed {
		return exitSilently
	}
	return nil
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

func checkLoop() (string, error) {
	fi, err := os.Stat("/dev/loop-control")
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return "", errors.New("/dev/loop-control is missing: run modprobe loop (in a container, pass the host's /dev/loop-control and loop devices)")
	}
	return "", nil
}

func checkContainerd(ctx context.Context, address string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	v, err := versionapi.NewVersionClient(conn).Version(ctx, &emptypb.Empty{})
	if err != nil {
		return "", fmt.Errorf("containerd does not answer at %s (%v): start it, or give its socket with --address", address, err)
	}
	if !atLeast(v.GetVersion(), minContainerd) {
		return "", fmt.Errorf("containerd %s is too old: upgrade to %d.%d or newer", v.GetVersion(), minContainerd[0], minContainerd[1])
	}
	return v.GetVersion(), nil
}

func checkRunc() (string, error) {
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", errors.New("runc is not on PATH: install runc " + fmt.Sprintf("%d.%d", minRunc[0], minRunc[1]) + " or newer")
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %v", p, err)
	}
	// "runc version 1.3.0" on the first line.
	line, _, _ := bytes.Cut(out, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 3 || !atLeast(f[2], minRunc) {
		return "", fmt.Errorf("%s is %q: install runc %d.%d or newer", p, strings.TrimSpace(string(line)), minRunc[0], minRunc[1])
	}
	return p + " " + f[2], nil
}

// atLeast compares the major.minor of a version like v2.4.2 or 1.3.0-rc.1.
func atLeast(version string, min [2]int) bool {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	digits := strings.FieldsFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if len(digits) == 0 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(digits[0])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > min[0] || major == min[0] && minor >= min[1]
}
