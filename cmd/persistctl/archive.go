package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func exportCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write a detached volume's content as a tar stream (owners, modes, xattrs, links, devices and holes kept)",
		Description: "FILE is written whole or not at all; without FILE, or with -, the tar goes to stdout.\n" +
			"A volume a container holds is refused: stop that container first.",
		ArgsUsage: "NAME [FILE|-]",
		Flags:     []cli.Flag{namespaceFlag(), tenantFlag(), backendFlag},
		Action:    volumesExport,
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:  "import",
		Usage: "make a volume from a tar stream made by export",
		Description: "Reads FILE, or stdin without FILE or with -. The volume is made whole or not at all.\n" +
			"Entries that would land outside the volume, or write through a link, fail the import.",
		ArgsUsage: "NAME [FILE|-]",
		Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag,
			&cli.StringFlag{Name: "backend", Usage: "`BACKEND` to make it in (default: the only backend, else the one the export came from)"},
			&cli.StringFlag{Name: "size", Usage: "`SIZE` of a loopfile volume (default: the exported volume's, else the backend's default_size)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing volume that no container holds"}},
		Action: volumesImport,
	}
}

func volumesExport(c *cli.Context) (retErr error) {
	a, cfg, err := argsAndConfig(c, 1, 2)
	if err != nil {
		return err
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	var w io.Writer = c.App.Writer
	if len(a) == 2 && a[1] != "-" {
		// Written beside FILE and renamed over it at the end, so a failed
		// export leaves no partial archive that looks whole.
		f, err := os.CreateTemp(filepath.Dir(a[1]), "."+filepath.Base(a[1])+".*")
		if err != nil {
			return fmt.Errorf("export volume %s: %w", a[0], err)
		}
		defer func() {
			if retErr != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		w = f
		defer func() {
			if retErr == nil {
				retErr = finishFile(f, a[1])
			}
		}()
	} else if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return errors.New("stdout is a terminal: give a FILE, or pipe the tar into a file or command")
	}
	p := startProgress(c, "export "+a[0], 0)
	err = s.Export(b, id, p.writer(w), holder(c, "export"))
	p.stop()
	return err
}

func finishFile(f *os.File, path string) error {
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func volumesImport(c *cli.Context) error {
	a, cfg, err := argsAndConfig(c, 1, 2)
	if err != nil {
		return err
	}
	name := a[0]
	id, err := volumeID(c, name)
	if err != nil {
		return err
	}
	var r io.Reader = c.App.Reader
	var total int64
	if len(a) == 2 && a[1] != "-" {
		f, err := os.Open(a[1])
		if err != nil {
			return fmt.Errorf("import volume %s: %w", name, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		r = f
	}
	var exported *volumes.Meta
	if !c.IsSet("backend") && len(cfg.Backends) > 1 {
		exported, r = volumes.PeekExport(r)
	}
	b, err := importBackend(c, cfg, exported)
	if err != nil {
		return err
	}
	size, err := volumeSize(c, b)
	if err != nil {
		return err
	}
	if !c.IsSet("size") {
		size = 0 // the exported volume's, else the default
	}
	s := openStore(cfg)
	if err := refuseElsewhere(cfg, s, id, b.Name); err != nil {
		return err
	}
	p := startProgress(c, "import "+name, total)
	m, err := s.Import(p.reader(r), volumes.ImportOptions{
		ID:          id,
		Backend:     volumeBackend(b),
		Size:        size,
		DefaultSize: uint64(b.DefaultSize),
		Force:       c.Bool("force"),
		Holder:      holder(c, "import"),
	})
	p.stop()
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, m)
	}
	fmt.Fprintf(c.App.Writer, "imported volume %s into backend %s\n", id, b.Name)
	return nil
}

// importBackend is --backend, the config's only backend, or the backend
// the export says the volume came from, when the config has it.
func importBackend(c *cli.Context, cfg *config.Config, exported *volumes.Meta) (*config.Backend, error) {
	if c.IsSet("backend") || len(cfg.Backends) == 1 {
		return pickBackend(c, cfg)
	}
	if exported != nil {
		if b, ok := cfg.Backend(exported.Backend); ok {
			return b, nil
		}
	}
	_, err := pickBackend(c, cfg)
	switch {
	case exported == nil:
		return nil, fmt.Errorf("%w (the archive does not say which backend it came from)", err)
	default:
		return nil, fmt.Errorf("%w (the archive came from backend %s, which config %s does not have)", err, volumes.Quote(exported.Backend), cfg.Source)
	}
}
