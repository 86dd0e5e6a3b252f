package main

import (
	"errors"
	"fmt"
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
		Usage:   "list, inspect, create, remove, measure, export and import volumes",
		Subcommands: []*cli.Command{
			{
				Name:    "ls",
				Aliases: []string{"list"},
				Usage:   "list volumes, with the container that holds each",
				Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag,
					&cli.BoolFlag{Name: "all-namespaces", Aliases: []string{"A"}, Usage: "list the volumes of every namespace"}},
				Action: volumesList,
			},
			{
				Name:      "inspect",
				Usage:     "print a volume's metadata",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
				Action:    volumesInspect,
			},
			{
				Name:      "create",
				Usage:     "create an empty volume",
				ArgsUsage: "NAME",
				Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag,
					&cli.StringFlag{Name: "backend", Usage: "`BACKEND` to create it in (default: the only backend)"},
					&cli.StringFlag{Name: "size", Usage: "`SIZE` of a loopfile volume, like 10GiB (default: the backend's default_size)"},
					&cli.StringFlag{Name: "class", Usage: "`CLASS` to record as the volume's"}},
				Action: volumesCreate,
			},
			{
				Name:      "rm",
				Aliases:   []string{"remove"},
				Usage:     "remove volumes that no container holds",
				ArgsUsage: "NAME...",
				Flags:     []cli.Flag{namespaceFlag(), tenantFlag(), backendFlag},
				Action:    volumesRemove,
			},
			{
				Name:      "du",
				Usage:     "measure what a volume's content takes: bytes and inodes",
				ArgsUsage: "NAME",
				Flags:     []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
				Action:    volumesDu,
			},
			exportCommand(backendFlag),
			importCommand(),
		},
	}
}

func volumesList(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	ns := namespace(c)
	if c.Bool("all-namespaces") {
		ns = ""
	}
	infos, err := openStore(cfg).List(backends(cfg), ns)
	if err != nil {
		return err
	}
	if c.IsSet("tenant") {
		infos = slices.DeleteFunc(infos, func(v volumes.Info) bool { return v.Tenant != c.String("tenant") })
	}
	if c.Bool("json") {
		if infos == nil {
			infos = []volumes.Info{}
		}
		return printJSON(c, infos)
	}
	tw := newTable(c, "NAMESPACE", "TENANT", "NAME", "BACKEND", "TYPE", "SIZE", "USED", "ATTACHED TO", "SINCE", "LAST ATTACHED")
	for _, v := range infos {
		var size, used, to, since string
		if v.Size > 0 {
			size = config.Size(v.Size).Approx()
		}
		if v.Used != nil {
			used = config.Size(*v.Used).Approx()
		}
		if v.Holder != nil {
			to, since = v.Holder.Container, when(v.Holder.Since)
			if to == "" {
				to = "(shared)"
			}
		}
		typ := v.Type
		if v.Overcommit {
			typ += " (overcommit)" // its space was not reserved
		}
		row(tw, v.Namespace, v.Tenant, v.Name, v.Backend, typ, size, used, to, since, when(v.LastAttached))
	}
	return tw.Flush()
}

// find finds the named volume of the namespace, in --backend if given.
func find(c *cli.Context, cfg *config.Config, name string) (*volumes.Store, volumes.Backend, volumes.ID, error) {
	id, err := volumeID(c, name)
	if err != nil {
		return nil, volumes.Backend{}, id, err
	}
	s := openStore(cfg)
	bs := backends(cfg)
	if want := c.String("backend"); want != "" {
		b, ok := cfg.Backend(want)
		if !ok {
			return nil, volumes.Backend{}, id, fmt.Errorf("%w: backend %s is not in config %s", errdefs.ErrNotFound, volumes.Quote(want), cfg.Source)
		}
		bs = []volumes.Backend{volumeBackend(b)}
	}
	b, _, err := s.Find(bs, id)
	return s, b, id, err
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
	if c.Bool("json") {
		return printJSON(c, out)
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
	id, err := volumeID(c, a[0])
	if err != nil {
		return err
	}
	s := openStore(cfg)
	if err := refuseElsewhere(cfg, s, id, b.Name); err != nil {
		return err
	}
	vb := volumeBackend(b)
	if err := s.CreateLocked(vb, id, volumes.Meta{Size: size, Class: c.String("class")}, holder(c, "create")); err != nil {
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
