package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func snapshotCommand(backendFlag cli.Flag) *cli.Command {
	flags := func(extra ...cli.Flag) []cli.Flag {
		return append([]cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag}, extra...)
	}
	return &cli.Command{
		Name:    "snapshot",
		Aliases: []string{"snapshots", "snap"},
		Usage:   "take, list, restore and remove snapshots of a volume",
		Description: "Snapshots live in the volume's directory in its backend and go with the volume.\n" +
			"A loopfile volume that a container holds is snapshotted live: its filesystem is frozen for the copy.\n" +
			"On a backend that reserves space the copy is a copy; on an overcommit backend on XFS or btrfs, a reflink.",
		Subcommands: []*cli.Command{
			{
				Name:         "create",
				Usage:        "take a snapshot of a volume (default SNAP: the time, like 20261201T221705Z)",
				ArgsUsage:    "NAME [SNAP]",
				Flags:        flags(),
				Action:       snapshotCreate,
				BashComplete: completeVolumes,
			},
			{
				Name:         "ls",
				Aliases:      []string{"list"},
				Usage:        "list a volume's snapshots, oldest first",
				ArgsUsage:    "NAME",
				Flags:        flags(),
				Action:       snapshotList,
				BashComplete: completeVolumes,
			},
			{
				Name:         "restore",
				Usage:        "put a snapshot back as the content of a volume that no container holds (the snapshot stays)",
				ArgsUsage:    "NAME SNAP",
				Flags:        flags(),
				Action:       snapshotRestore,
				BashComplete: completeVolumes,
			},
			{
				Name:         "rm",
				Aliases:      []string{"remove"},
				Usage:        "remove a snapshot",
				ArgsUsage:    "NAME SNAP",
				Flags:        flags(),
				Action:       snapshotRemove,
				BashComplete: completeVolumes,
			},
		},
	}
}

func cloneCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "clone",
		Usage: "make volume DST a copy of volume SRC, in its backend, namespace and tenant",
		Description: "DST gets SRC's content, size, class, labels and image record, not its snapshots.\n" +
			"A loopfile SRC that a container holds is copied live, its filesystem frozen for the copy.",
		ArgsUsage:    "SRC DST",
		Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
		Action:       volumesClone,
		BashComplete: completeVolumes,
	}
}

func resetCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "reset",
		Usage: "drop the root layer of a machine volume that no container holds: its next container starts from the image",
		Description: "The volume's snapshots and the class's other volumes stay. Take a snapshot first to keep the layer:\n" +
			"persistctl volumes snapshot create NAME",
		ArgsUsage:    "NAME",
		Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
		Action:       volumesReset,
		BashComplete: completeVolumes,
	}
}

// copyProgress draws a progress bar for a copy once it is told its size.
type copyProgress struct {
	c    *cli.Context
	what string
	p    *progress
}

func (cp *copyProgress) report(done, total int64) {
	if cp.p == nil {
		if cp.p = startProgress(cp.c, cp.what, total); cp.p == nil {
			return
		}
	}
	cp.p.n.Store(done)
}

func (cp *copyProgress) stop() { cp.p.stop() }

func snapshotCreate(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 2)
	if err != nil {
		return err
	}
	name := volumes.DefaultSnapshotName(time.Now())
	if len(a) == 2 {
		name = a[1]
	}
	if err := volumes.ValidateSnapshotName(name); err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	cp := &copyProgress{c: c, what: "snapshot " + a[0]}
	snap, err := s.CreateSnapshot(b, id, name, volumes.CopyOptions{Holder: holder(c, "snapshot"), Progress: cp.report})
	cp.stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, snap)
	}
	how := snap.Method
	if snap.Live {
		how += fmt.Sprintf(", live: frozen for %s", snap.Frozen.Round(time.Microsecond))
	}
	fmt.Fprintf(c.App.Writer, "created snapshot %s of volume %s (%s)\n", snap.Name, id, how)
	return nil
}

func snapshotList(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	snaps, err := s.Snapshots(b, id)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if snaps == nil {
			snaps = []volumes.Snapshot{}
		}
		return printJSON(c, snaps)
	}
	tw := newTable(c, "SNAPSHOT", "CREATED", "METHOD", "SIZE", "USED", "FROZEN")
	for _, sn := range snaps {
		size, used, frozen := "", "", ""
		if sn.Size > 0 {
			size = config.Size(sn.Size).Approx()
		}
		if sn.Used != nil {
			used = config.Size(*sn.Used).Approx()
		}
		if sn.Live {
			frozen = sn.Frozen.Round(time.Microsecond).String()
		}
		row(tw, sn.Name, when(sn.Created), sn.Method, size, used, frozen)
	}
	return tw.Flush()
}

func snapshotRestore(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 2, 2)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	cp := &copyProgress{c: c, what: "restore " + a[0]}
	snap, err := s.RestoreSnapshot(b, id, a[1], volumes.CopyOptions{Holder: holder(c, "restore"), Progress: cp.report})
	cp.stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, snap)
	}
	fmt.Fprintf(c.App.Writer, "restored volume %s from snapshot %s (%s)\n", id, snap.Name, snap.Method)
	return nil
}

func snapshotRemove(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 2, 2)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	if err := s.RemoveSnapshot(b, id, a[1]); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, map[string]string{"volume": id.Name(), "removed": a[1]})
	}
	fmt.Fprintf(c.App.Writer, "removed snapshot %s of volume %s\n", a[1], id)
	return nil
}

func volumesClone(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 2, 2)
	if err != nil {
		return err
	}
	s, b, src, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	dst, err := volumeID(c, a[1])
	if err != nil {
		return err
	}
	if err := refuseElsewhere(cfg, s, dst, b.Name); err != nil {
		return err
	}
	cp := &copyProgress{c: c, what: "clone " + a[0]}
	info, err := s.Clone(b, src, dst, volumes.CopyOptions{Holder: holder(c, "clone"), Progress: cp.report})
	cp.stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, info)
	}
	fmt.Fprintf(c.App.Writer, "cloned volume %s to %s in backend %s\n", src, dst.Name(), b.Name)
	return nil
}

func volumesReset(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	if err := s.Reset(b, id, holder(c, "reset")); err != nil {
		return err
	}
	if c.Bool("json") {
		info, err := s.Inspect(b, id)
		if err != nil {
			return err
		}
		return printJSON(c, info)
	}
	fmt.Fprintf(c.App.Writer, "reset volume %s: its next container starts from its image\n", id)
	return nil
}
