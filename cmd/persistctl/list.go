package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"unicode/utf8"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func listCommand() *cli.Command {
	return &cli.Command{
		Name:    "ls",
		Aliases: []string{"list"},
		Usage:   "list volumes, with the container that holds each",
		Description: "USED is what a loopfile volume's image takes on its backend. A dir volume has no image, and measuring it\n" +
			"means walking every file, which ls does only with --du (or see volumes du NAME).",
		Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag,
			&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list the volumes of every namespace"},
			filterFlag(true), formatFlag,
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the names"},
			&cli.BoolFlag{Name: "du", Usage: "measure dir volumes too, for USED: walks every file of each"}},
		Action: volumesList,
	}
}

func volumesList(c *cli.Context) error {
	// ls runs once and exits: with thousands of volumes, collecting the
	// garbage of their decoding as it goes costs more than the memory it
	// would give back. A heap 9 times what is live stays bounded.
	defer debug.SetGCPercent(debug.SetGCPercent(800))
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	if n := countSet(c, "json", "format", "quiet"); n > 1 {
		return errdefs.ErrInvalidArgument.WithMessage("give one of --json, --format and --quiet")
	}
	f, err := parseFilter(c.StringSlice("filter"))
	if err != nil {
		return err
	}
	ns := namespace(c)
	if c.Bool("all-namespaces") {
		ns = ""
	}
	s := openStore(cfg)
	infos, err := s.List(backends(cfg), ns)
	if err != nil {
		return err
	}
	if c.IsSet("tenant") {
		infos = slices.DeleteFunc(infos, func(v volumes.Info) bool { return v.Tenant != c.String("tenant") })
	}
	infos = f.apply(infos)
	if c.Bool("du") {
		if err := measureDirs(c, cfg, s, infos); err != nil {
			return err
		}
	}
	// One write per 64 KiB, not one per cell: a table of thousands of
	// volumes would otherwise take 20 write calls a line.
	out := bufio.NewWriterSize(c.App.Writer, 64<<10)
	unmeasured, err := printList(c, cfg, out, infos)
	if err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if unmeasured {
		// Not in the table: its lines stay one per volume.
		fmt.Fprintln(errWriter(c), "USED of dir volumes takes a walk of every file: add --du, or run persistctl volumes du NAME")
	}
	return nil
}

// printList prints the volumes as ls's options say, to out, and reports
// whether the table has volumes whose USED was not measured.
func printList(c *cli.Context, cfg *config.Config, out *bufio.Writer, infos []volumes.Info) (bool, error) {
	switch format := c.String("format"); {
	case c.Bool("quiet"):
		for _, v := range infos {
			fmt.Fprintln(out, v.Name)
		}
		return false, nil
	case c.Bool("json"):
		if infos == nil {
			infos = []volumes.Info{}
		}
		return false, printJSON(c, infos)
	case !isTable(format):
		return false, printFormatted(out, format, infos)
	}
	tw := &table{}
	tw.add("NAMESPACE", "TENANT", "NAME", "BACKEND", "TYPE", "SIZE", "USED", "ATTACHED TO", "SINCE", "LAST ATTACHED")
	unmeasured := false
	attachedTo := clusterAttachedTo(c, cfg)
	for _, i := range infos {
		v := newView(i)
		v.AttachedTo = attachedTo(i, v.AttachedTo)
		if i.Overcommit {
			v.Type += " (overcommit)" // its space was not reserved
		}
		unmeasured = unmeasured || i.Used == nil
		tw.add(v.Namespace, v.Tenant, v.Name, v.Backend, v.Type, v.Size, v.Used, v.AttachedTo, v.Since, v.LastAttached)
	}
	tw.write(out)
	return unmeasured, nil
}

// table lays out rows as newTable's tabwriter does: each cell but the last
// padded with spaces to its column's widest cell plus two, an empty cell
// shown as "-" (see row). tabwriter reads every byte of every cell through
// its state machine: over 10,000 volumes that took 15-20 ms, a tenth of ls,
// where cells that are known already take 2 ms.
type table struct {
	rows   [][]string
	widths []int // in runes, as tabwriter counts
}

func (t *table) add(cells ...string) {
	if len(t.widths) < len(cells) {
		t.widths = append(t.widths, make([]int, len(cells)-len(t.widths))...)
	}
	for i, s := range cells {
		if s == "" {
			s, cells[i] = "-", "-"
		}
		t.widths[i] = max(t.widths[i], utf8.RuneCountInString(s))
	}
	t.rows = append(t.rows, cells)
}

// write writes the table to bw; bw's Flush says how it went.
func (t *table) write(bw *bufio.Writer) {
	const spaces = "                                "
	for _, cells := range t.rows {
		for i, s := range cells {
			bw.WriteString(s)
			if i == len(cells)-1 {
				break
			}
			for pad := t.widths[i] + 2 - utf8.RuneCountInString(s); pad > 0; pad -= len(spaces) {
				bw.WriteString(spaces[:min(pad, len(spaces))])
			}
		}
		bw.WriteByte('\n')
	}
}

// measureDirs fills in Used of the dir volumes, by walking each; a volume
// removed meanwhile is left unmeasured.
func measureDirs(c *cli.Context, cfg *config.Config, s *volumes.Store, infos []volumes.Info) error {
	for i := range infos {
		v := &infos[i]
		if v.Used != nil {
			continue
		}
		b, ok := cfg.Backend(v.Backend)
		if !ok {
			continue
		}
		id, err := volumes.NewID(v.Namespace, v.Tenant, v.Name)
		if err != nil {
			return err
		}
		u, err := s.Usage(volumeBackend(b), id, holder(c, "ls"))
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		v.Used = &u.Bytes
	}
	return nil
}

// countSet counts the options given.
func countSet(c *cli.Context, names ...string) int {
	n := 0
	for _, name := range names {
		if c.IsSet(name) {
			n++
		}
	}
	return n
}

// errWriter is where notes and questions go: stderr, or the app's.
func errWriter(c *cli.Context) io.Writer {
	if c.App.ErrWriter != nil {
		return c.App.ErrWriter
	}
	return os.Stderr
}
