package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "print the default config, or check one",
		Subcommands: []*cli.Command{
			{
				Name:   "default",
				Usage:  "print the config built into the shim",
				Action: func(c *cli.Context) error { _, err := c.App.Writer.Write(config.DefaultTOML); return err },
			},
			{
				Name:      "check",
				Usage:     "check a config and print every problem, one per line (exit 1 if any)",
				ArgsUsage: "[FILE]",
				Flags:     []cli.Flag{jsonFlag},
				Action:    configCheck,
			},
		},
	}
}

// checkResult is config check --json.
type problem struct {
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

type checkResult struct {
	Source   string    `json:"source"`
	Valid    bool      `json:"valid"`
	Problems []problem `json:"problems,omitempty"`
	Error    string    `json:"error,omitempty"` // when the file cannot be read
}

func configCheck(c *cli.Context) error {
	a, err := args(c, 0, 1)
	if err != nil {
		return err
	}
	path := c.String("config")
	if len(a) == 1 {
		path = a[0]
	}
	cfg, err := config.Load(path, "", config.SystemPath)
	var cerr *config.Error
	res := checkResult{Source: path}
	switch {
	case err == nil:
		res.Source, res.Valid = cfg.Source, true
	case errors.As(err, &cerr):
		res.Source = cerr.Source
		for _, p := range cerr.Problems {
			res.Problems = append(res.Problems, problem{p.Line, p.Key, p.Msg})
		}
	default:
		res.Error = err.Error()
	}
	if c.Bool("json") {
		if err := printJSON(c, res); err != nil {
			return err
		}
	} else if res.Valid {
		fmt.Fprintf(c.App.Writer, "config %s is valid\n", res.Source)
	} else if cerr != nil {
		for _, line := range cerr.Lines() {
			fmt.Fprintln(c.App.Writer, line)
		}
	}
	switch {
	case res.Valid:
		return nil
	case res.Error != "" && !c.Bool("json"):
		return err
	}
	return exitSilently
}
