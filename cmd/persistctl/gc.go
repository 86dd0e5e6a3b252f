package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "remove leftovers of dead containers: journals, scratch, mounts, loop devices, half-made volumes, stale locks",
		Description: "Only what no live container holds is touched, and only under the state dir and the backends.\n" +
			"Volumes themselves are never removed: see persistctl volumes rm.",
		Flags: []cli.Flag{jsonFlag,
			&cli.BoolFlag{Name: "dry-run", Usage: "list the leftovers, change nothing"}},
		Action: gc,
	}
}

// gcResult is one line of gc --json.
type gcResult struct {
	state.Leftover
	Removed bool   `json:"removed"`
	Error   string `json:"error,omitempty"`
}

func gc(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	g := state.NewGC(state.Dir(cfg.StateDir), backends(cfg), host.Linux{})
	found, err := g.Find()
	if err != nil {
		return err
	}
	results := []gcResult{}
	var errs []error
	for _, l := range found {
		r := gcResult{Leftover: l}
		if !c.Bool("dry-run") {
			err := g.Remove(l)
			switch {
			case errors.Is(err, state.ErrLive):
				r.Error = state.ErrLive.Error()
			case err != nil:
				r.Error = err.Error()
				errs = append(errs, err)
			default:
				r.Removed = true
			}
		}
		results = append(results, r)
	}
	results, errs = gcCluster(c, cfg, results, errs) // after the mounts above are gone
	if c.Bool("json") {
		if err := printJSON(c, results); err != nil {
			return err
		}
	} else {
		tw := newTable(c, "KIND", "PATH", "STATE", "WHAT")
		for _, r := range results {
			st := "found"
			switch {
			case r.Removed:
				st = "removed"
			case r.Error != "":
				st = "left: " + r.Error
			}
			row(tw, r.Kind, r.Path, st, r.What)
		}
		if len(results) == 0 {
			fmt.Fprintln(c.App.Writer, "nothing to remove")
		} else if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%d leftovers could not be removed: see above, fix and run gc again", len(errs))
	}
	return nil
}
