package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove the volumes of the namespace that no container holds",
		Description: "Removes what volumes ls --filter dangling=true lists with the same -n, --tenant and --filter:\n" +
			"every volume of the namespace that matches and that no container holds. A volume that a container\n" +
			"attaches meanwhile is kept. Machine volumes are volumes too: a container that comes back for a pruned\n" +
			"one starts empty. Asks first (y to go on) unless --force; --dry-run only lists them.",
		Flags: []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, filterFlag(false),
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask"},
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be removed, remove nothing"}},
		Action: volumesPrune,
	}
}

// pruneResult is one line of volumes prune --json.
type pruneResult struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Tenant    string `json:"tenant,omitempty"`
	Backend   string `json:"backend"`
	Removed   bool   `json:"removed"`
	Kept      string `json:"kept,omitempty"` // why it was not removed
}

func volumesPrune(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	f, err := parseFilter(c.StringSlice("filter"))
	if err != nil {
		return err
	}
	s := openStore(cfg)
	infos, err := s.List(backends(cfg), namespace(c))
	if err != nil {
		return err
	}
	infos = slices.DeleteFunc(f.apply(infos), func(v volumes.Info) bool {
		return v.Holder != nil || (c.IsSet("tenant") && v.Tenant != c.String("tenant"))
	})
	results := []pruneResult{}
	for _, v := range infos {
		results = append(results, pruneResult{Name: v.Name, Namespace: v.Namespace, Tenant: v.Tenant, Backend: v.Backend})
	}
	if len(infos) > 0 && !c.Bool("dry-run") && !c.Bool("force") {
		if err := confirmPrune(c, infos); err != nil {
			return err
		}
	}
	var errs []error
	for i := range results {
		if c.Bool("dry-run") {
			break
		}
		r := &results[i]
		r.Kept, err = pruneOne(c, cfg, s, infos[i])
		r.Removed = err == nil && r.Kept == ""
		if err != nil {
			r.Kept = err.Error()
			errs = append(errs, err)
		}
	}
	if c.Bool("json") {
		if err := printJSON(c, results); err != nil {
			return err
		}
	} else {
		printPruned(c, results)
	}
	return errors.Join(errs...)
}

// pruneOne removes a volume that was listed as free. One that a container
// attached, or someone removed, since is kept, and says why.
func pruneOne(c *cli.Context, cfg *config.Config, s *volumes.Store, v volumes.Info) (kept string, err error) {
	b, ok := cfg.Backend(v.Backend)
	if !ok {
		return "", fmt.Errorf("backend %s is no longer in config %s", v.Backend, cfg.Source)
	}
	id, err := volumes.NewID(v.Namespace, v.Tenant, v.Name)
	if err != nil {
		return "", err
	}
	err = s.Remove(volumeBackend(b), id, holder(c, "prune"))
	switch {
	case errors.Is(err, volumes.ErrHeld):
		return "held meanwhile: see volumes ls", nil
	case errdefs.IsNotFound(err):
		return "removed meanwhile", nil
	}
	return "", err
}

func printPruned(c *cli.Context, results []pruneResult) {
	if len(results) == 0 {
		fmt.Fprintln(c.App.Writer, "no volume to prune")
		return
	}
	for _, r := range results {
		id := displayID(r.Namespace, r.Tenant, r.Name)
		switch {
		case r.Removed:
			fmt.Fprintf(c.App.Writer, "removed volume %s\n", id)
		case r.Kept != "":
			fmt.Fprintf(c.App.Writer, "kept volume %s: %s\n", id, r.Kept)
		default:
			fmt.Fprintf(c.App.Writer, "would remove volume %s (backend %s)\n", id, r.Backend)
		}
	}
}

// confirmPrune lists what prune would remove and asks, on stderr; only y
// or yes on stdin goes on, so that a script without --force removes nothing.
func confirmPrune(c *cli.Context, infos []volumes.Info) error {
	w := errWriter(c)
	fmt.Fprintf(w, "These %d volumes, with their content, will be removed:\n", len(infos))
	for _, v := range infos {
		fmt.Fprintf(w, "  %s (backend %s)\n", displayID(v.Namespace, v.Tenant, v.Name), v.Backend)
	}
	fmt.Fprint(w, "Remove them? [y/N] ")
	answer, _ := bufio.NewReader(c.App.Reader).ReadString('\n')
	if f, ok := c.App.Reader.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		fmt.Fprintln(w, strings.TrimSpace(answer)) // a terminal echoed it
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return fmt.Errorf("%w: nothing removed: answer y, or pass --force to remove without asking", errdefs.ErrAborted)
}

// displayID names a listed volume as volumes.ID does; List returns only
// valid identities.
func displayID(ns, tenant, name string) string {
	id, err := volumes.NewID(ns, tenant, name)
	if err != nil {
		return ns + "/" + name
	}
	return id.String()
}
