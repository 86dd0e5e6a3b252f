package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
)

func classesCommand() *cli.Command {
	return &cli.Command{
		Name:   "classes",
		Usage:  "list the workload classes of the config",
		Flags:  []cli.Flag{jsonFlag},
		Action: classes,
	}
}

// classInfo is a class as classes --json prints it; sizes are bytes.
type classInfo struct {
	Name       string        `json:"name"`
	Mode       string        `json:"mode"`
	Selectable bool          `json:"selectable"`
	Default    bool          `json:"default"`
	Root       *volumeInfo   `json:"root,omitempty"` // a machine class's root volume
	Scratch    []scratchInfo `json:"scratch"`
	Volumes    []volumeInfo  `json:"volumes"`
}

type scratchInfo struct {
	Path   string `json:"path"`
	Medium string `json:"medium"`
	Size   uint64 `json:"size"`
}

type volumeInfo struct {
	Path          string `json:"path"`
	Backend       string `json:"backend"`
	Name          string `json:"name"` // template
	Size          uint64 `json:"size,omitempty"`
	Shared        bool   `json:"shared,omitempty"`
	OnImageChange string `json:"on_image_change,omitempty"`
}

func classes(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	var out []classInfo
	for _, name := range cfg.ClassNames() {
		cl := cfg.Classes[name]
		ci := classInfo{Name: name, Mode: string(cl.Mode), Selectable: cl.Selectable, Default: name == cfg.DefaultClass,
			Scratch: []scratchInfo{}, Volumes: []volumeInfo{}}
		if cl.Mode == config.ModeMachine {
			ci.Root = &volumeInfo{Path: "/", Backend: cl.Backend, Name: cl.VolumeName, Size: uint64(cl.Size), OnImageChange: string(cl.OnImageChange)}
		}
		for _, s := range cl.Scratch {
			ci.Scratch = append(ci.Scratch, scratchInfo{s.Path, string(s.Medium), uint64(s.Size)})
		}
		for _, v := range cl.Volumes {
			ci.Volumes = append(ci.Volumes, volumeInfo{Path: v.Path, Backend: v.Backend, Name: v.Name, Size: uint64(v.Size), Shared: v.Shared})
		}
		out = append(out, ci)
	}
	if c.Bool("json") {
		return printJSON(c, out)
	}
	tw := newTable(c, "NAME", "MODE", "SCRATCH", "VOLUMES", "SELECTABLE")
	for _, ci := range out {
		var scratch, vols []string
		for _, s := range ci.Scratch {
			scratch = append(scratch, fmt.Sprintf("%s:%s:%s", s.Path, s.Medium, config.Size(s.Size)))
		}
		if ci.Root != nil {
			vols = append(vols, fmt.Sprintf("/:%s:%s", ci.Root.Backend, ci.Root.Name))
		}
		for _, v := range ci.Volumes {
			vols = append(vols, fmt.Sprintf("%s:%s:%s", v.Path, v.Backend, v.Name))
		}
		name := ci.Name
		if ci.Default {
			name += " (default)"
		}
		row(tw, name, ci.Mode, strings.Join(scratch, ","), strings.Join(vols, ","), fmt.Sprint(ci.Selectable))
	}
	return tw.Flush()
}
