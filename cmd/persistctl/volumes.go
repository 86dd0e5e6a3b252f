package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func volumesCommand() *cli.Command {
	backendFlag := &cli.StringFlag{Name: "backend", Usage: "the `BACKEND` the volume is in, when several hold that name"}
	return &cli.Command{
		Name:    "volumes",
		Aliases: []string{"volume", "v"},
		Usage:   "list, inspect, create, label, rename, remove, measure, export and import volumes",
		Subcommands: []*cli.Command{
			listCommand(),
			{
				Name:         "inspect",
				Usage:        "print a volume's metadata",
				ArgsUsage:    "NAME",
				Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, formatFlag, backendFlag},
				Action:       volumesInspect,
				BashComplete: completeVolumes,
			},
			{
				Name:      "create",
				Usage:     "create an empty volume",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag,
					&cli.StringFlag{Name: "backend", Usage: "`BACKEND` to create it in (default: the only backend)"},
					&cli.StringFlag{Name: "size", Usage: "`SIZE` of a loopfile volume, like 10GiB (default: the backend's default_size)"},
					&cli.StringFlag{Name: "class", Usage: "`CLASS` to record as the volume's"},
					labelFlag()},
				Action: volumesCreate,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove volumes that no container holds",
				ArgsUsage: "NAME...",
				Flags: []cli.Flag{namespaceFlag(), tenantFlag(), backendFlag,
					&cli.BoolFlag{Name: "force", Aliases: []string{"f"},
						Usage: "a volume that does not exist is no error, as with docker volume rm -f (a held volume is still refused: delete its container first)"}},
				Action:       volumesRemove,
				BashComplete: completeVolumes,
			},
			pruneCommand(),
			{
				Name:         "du",
				Usage:        "measure what a volume's content takes: bytes and inodes",
				ArgsUsage:    "NAME",
				Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
				Action:       volumesDu,
				BashComplete: completeVolumes,
			},
			renameCommand(backendFlag),
			setCommand(backendFlag),
			unsetCommand(backendFlag),
			existsCommand(backendFlag),
			exportCommand(backendFlag),
			importCommand(),
			snapshotCommand(backendFlag),
			cloneCommand(backendFlag),
			resetCommand(backendFlag),
		},
	}
}

// find finds the named volume of the namespace, in --backend if given.
func find(c *cli.Context, cfg *config.Config, name string) (*volumes.Store, volumes.Backend, volumes.ID, error) {
	id, err := volumeID(c, name)
	if err != nil {
		return nil, volumes.Backend{}, id, err
	}
	bs, err := searched(c, cfg)
	if err != nil {
		return nil, volumes.Backend{}, id, err
	}
	s := openStore(cfg)
	b, _, err := s.Find(bs, id)
	return s, b, id, err
}

// searched are the backends a volume is looked for in: --backend, or all.
func searched(c *cli.Context, cfg *config.Config) ([]volumes.Backend, error) {
	want := c.String("backend")
	if want == "" {
		return backends(cfg), nil
	}
	b, ok := cfg.Backend(want)
	if !ok {
		return nil, fmt.Errorf("%w: backend %s is not in config %s", errdefs.ErrNotFound, volumes.Quote(want), cfg.Source)
	}
	return []volumes.Backend{volumeBackend(b)}, nil
}

// inspectInfo is volumes inspect --json: the listing plus where its lock
// and, for a loopfile volume, its mount are.
type inspectInfo struct {
	volumes.Info
	Lock  string `json:"lock"`
	Mount string `json:"mount,omitempty"`
}

func volumesInspect(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	info, err := s.Inspect(b, id)
	if err != nil {
		return err
	}
	out := inspectInfo{Info: info, Lock: b.LockPath(id)}
	if info.Type == volumes.Loopfile {
		out.Mount = s.MountPath(id)
	}
	switch format := c.String("format"); {
	case c.Bool("json") && c.IsSet("format"):
		return errdefs.ErrInvalidArgument.WithMessage("give --json or --format, not both")
	case c.Bool("json"):
		return printJSON(c, out)
	case !isTable(format):
		return printFormatted(c.App.Writer, format, []volumes.Info{info})
	}
	return printInspect(c, out)
}

func printInspect(c *cli.Context, v inspectInfo) error {
	tw := newTable(c, "FIELD", "VALUE")
	row(tw, "name", v.Name)
	row(tw, "namespace", v.Namespace)
	row(tw, "tenant", v.Tenant)
	row(tw, "backend", v.Backend)
	row(tw, "type", v.Type)
	if v.Size > 0 {
		row(tw, "size", fmt.Sprintf("%s (%d bytes)", config.Size(v.Size).Approx(), v.Size))
	}
	if v.Used != nil {
		row(tw, "used", fmt.Sprintf("%s (%d bytes)", config.Size(*v.Used).Approx(), *v.Used))
	}
	row(tw, "class", v.Class)
	for _, k := range slices.Sorted(maps.Keys(v.Labels)) {
		row(tw, "label", k+"="+v.Labels[k])
	}
	row(tw, "created", when(v.Created))
	row(tw, "last attached", when(v.LastAttached))
	row(tw, "last holder", v.LastHolder)
	if v.Holder != nil {
		row(tw, "attached to", fmt.Sprintf("%s (namespace %s, shim pid %d) since %s", v.Holder.Container, v.Holder.Namespace, v.Holder.PID, when(v.Holder.Since)))
	} else {
		row(tw, "attached to", "")
	}
	if v.Image != nil {
		row(tw, "image", v.Image.String())
	}
	for _, ch := range v.ImageChanges {
		row(tw, "image change", fmt.Sprintf("%s: %s -> %s", when(ch.At), ch.From, ch.To))
	}
	for _, sn := range v.Snapshots {
		row(tw, "snapshot", fmt.Sprintf("%s: %s, %s", sn.Name, when(sn.Created), sn.Method))
	}
	row(tw, "dir", v.Dir)
	row(tw, "lock", v.Lock)
	if v.Mount != "" {
		row(tw, "mount", v.Mount)
	}
	return tw.Flush()
}

// pickBackend is --backend, or the config's only backend.
func pickBackend(c *cli.Context, cfg *config.Config) (*config.Backend, error) {
	want := c.String("backend")
	if want == "" && len(cfg.Backends) == 1 {
		for _, b := range cfg.Backends {
			return b, nil
		}
	}
	var names []string
	for _, b := range backends(cfg) {
		names = append(names, b.Name)
	}
	if want == "" {
		return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("name a backend with --backend: one of %s", strings.Join(names, ", ")))
	}
	b, ok := cfg.Backend(want)
	if !ok {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("backend %q is not in config %s: use one of %s", want, cfg.Source, strings.Join(names, ", ")))
	}
	return b, nil
}

// volumeSize is --size for a volume in b: the backend's default_size for a
// loopfile backend; refused for a dir backend, which has no limit.
func volumeSize(c *cli.Context, b *config.Backend) (uint64, error) {
	if !c.IsSet("size") {
		return uint64(b.DefaultSize), nil
	}
	if b.Type != config.BackendLoopfile {
		return 0, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("backend %s is a dir backend, which has no size limit: drop --size or use a loopfile backend", b.Name))
	}
	n, err := config.ParseSize(c.String("size"))
	if err != nil {
		return 0, errdefs.ErrInvalidArgument.WithMessage("--size: " + err.Error())
	}
	return uint64(n), nil
}

// refuseElsewhere refuses a name that another backend already holds: one
// name is one lock, so two volumes of one name could not both be attached.
func refuseElsewhere(cfg *config.Config, s *volumes.Store, id volumes.ID, backend string) error {
	b, _, err := s.Find(backends(cfg), id)
	switch {
	case errdefs.IsNotFound(err) || (err == nil && b.Name == backend):
		return nil
	case err == nil:
		return fmt.Errorf("%w: volume %s already exists, in backend %s", errdefs.ErrAlreadyExists, id, b.Name)
	}
	return err
}

func volumesCreate(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return err
	}
	b, err := pickBackend(c, cfg)
	if err != nil {
		return err
	}
	size, err := volumeSize(c, b)
	if err != nil {
		return err
	}
	labels, err := labelsOf(c.StringSlice("label"))
	if err != nil {
		return err
	}
	id, err := volumeID(c, a[0])
	if err != nil {
		return err
	}
	s := openStore(cfg)
	if err := refuseElsewhere(cfg, s, id, b.Name); err != nil {
		return err
	}
	vb := volumeBackend(b)
	if err := s.CreateLocked(vb, id, volumes.Meta{Size: size, Class: c.String("class"), Labels: labels}, holder(c, "create")); err != nil {
		return err
	}
	info, err := s.Inspect(vb, id)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, info)
	}
	fmt.Fprintf(c.App.Writer, "created volume %s in backend %s\n", id, b.Name)
	return nil
}

func volumesRemove(c *cli.Context) error {
	a, err := args(c, 1, 1<<20)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range a {
		s, b, id, err := find(c, cfg, name)
		if err == nil {
			err = s.Remove(b, id, holder(c, "rm"))
		}
		if errdefs.IsNotFound(err) && c.Bool("force") {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "removed volume %s\n", name)
	}
	return errors.Join(errs...)
}

// duInfo is volumes du --json.
type duInfo struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Tenant    string `json:"tenant,omitempty"`
	Backend   string `json:"backend"`
	volumes.Usage
}

func volumesDu(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 1)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	u, err := s.Usage(b, id, holder(c, "du"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, duInfo{Name: id.Name(), Namespace: id.Namespace(), Tenant: id.Tenant(), Backend: b.Name, Usage: u})
	}
	tw := newTable(c, "NAME", "BYTES", "APPARENT", "INODES", "IMAGE")
	image := ""
	if u.Image != nil {
		image = fmt.Sprintf("%s (%d)", config.Size(*u.Image).Approx(), *u.Image)
	}
	row(tw, a[0], fmt.Sprintf("%s (%d)", config.Size(u.Bytes).Approx(), u.Bytes), fmt.Sprintf("%s (%d)", config.Size(u.Apparent).Approx(), u.Apparent), fmt.Sprint(u.Inodes), image)
	return tw.Flush()
}
