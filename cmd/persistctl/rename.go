package main

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
)

func renameCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "rename",
		Aliases:   []string{"mv"},
		Usage:     "give a volume that no container holds a new name, in its namespace and tenant",
		ArgsUsage: "NAME NEW_NAME",
		Description: "The volume keeps its content, class, labels and backend. A container whose class names the old name\n" +
			"gets a new, empty volume: rename only what no container will ask for by the old name.",
		Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
		Action:       volumesRename,
		BashComplete: completeVolumes,
	}
}

func volumesRename(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 2, 2)
	if err != nil {
		return err
	}
	to, err := volumeID(c, a[1])
	if err != nil {
		return err
	}
	bs, err := searched(c, cfg)
	if err != nil {
		return err
	}
	s, b, from, err := find(c, cfg, a[0])
	if errdefs.IsNotFound(err) {
		// A rename cut short is finished by the same rename.
		if half, ok := s.HalfRenamed(bs, from, to); ok {
			b, err = half, nil
		}
	} else if err == nil {
		err = refuseElsewhere(cfg, s, to, b.Name)
	}
	if err != nil {
		return err
	}
	if err := s.Rename(b, from, to, holder(c, "rename")); err != nil {
		return err
	}
	if c.Bool("json") {
		info, err := s.Inspect(b, to)
		if err != nil {
			return err
		}
		return printJSON(c, info)
	}
	fmt.Fprintf(c.App.Writer, "renamed volume %s to %s\n", from, to.Name())
	return nil
}

func existsCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "exists",
		Usage:     "exit 0 if the volume exists, 1 if not, printing nothing; 2 and a message if it cannot tell",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{namespaceFlag(), tenantFlag(), backendFlag},
		Action:    volumesExists,
	}
}

func volumesExists(c *cli.Context) error {
	cannotTell := func(err error) error { return cli.Exit(err, 2) }
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return cannotTell(err)
	}
	id, err := volumeID(c, a[0])
	if err != nil {
		return cannotTell(err)
	}
	bs, err := searched(c, cfg)
	if err != nil {
		return cannotTell(err)
	}
	s := openStore(cfg)
	for _, b := range bs {
		_, err := s.Inspect(b, id)
		switch {
		case err == nil:
			return nil
		case !errdefs.IsNotFound(err):
			return cannotTell(err)
		}
	}
	return exitSilently
}
