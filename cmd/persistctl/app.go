package main

import (
	"encoding/json"
	"fmt"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/state"
	"github.com/containerd-persist/containerd-persist/volumes"
)

func newApp() *cli.App {
	return &cli.App{
		Name:  "persistctl",
		Usage: "manage containerd-persist volumes, classes and leftovers",
		Description: "Options go before or after arguments: persistctl volumes rm NAME --backend local works; after --, every word is an argument.\n" +
			"The config is looked up like the shim does: --config, else " + config.SystemPath + ", else the embedded default.\n" +
			"Shell completion: see persistctl completion --help.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "config `FILE` (default " + config.SystemPath + ", else the embedded default)"},
			namespaceFlag(),
		},
		Commands: []*cli.Command{
			configCommand(),
			classesCommand(),
			volumesCommand(),
			gcCommand(),
			doctorCommand(),
			completionCommand(),
			metricsCommand(),
			clusterCommand(),
		},
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// A --filter or --label value may hold commas.
		DisableSliceFlagSeparator: true,
		// main prints errors, once, and picks the exit code.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func namespaceFlag() cli.Flag {
	return &cli.StringFlag{Name: "namespace", Aliases: []string{"n"}, Value: "default", EnvVars: []string{"CONTAINERD_NAMESPACE"}, Usage: "containerd `NAMESPACE` of the volumes"}
}

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}

// namespace is -n as given after the command or, failing that, before it.
func namespace(c *cli.Context) string {
	for _, x := range c.Lineage() {
		if x.IsSet("namespace") {
			return x.String("namespace")
		}
	}
	return "default"
}

// loadConfig finds the config as the shim does, with --config in place of
// the runtime options.
func loadConfig(c *cli.Context) (*config.Config, error) {
	return config.Load(c.String("config"), "", config.SystemPath)
}

// backends are the config's backends, in name order.
func backends(cfg *config.Config) []volumes.Backend {
	var out []volumes.Backend
	for _, name := range slices.Sorted(maps.Keys(cfg.Backends)) {
		out = append(out, volumeBackend(cfg.Backends[name]))
	}
	return out
}

// volumeBackend is the volume store's view of a configured backend.
func volumeBackend(b *config.Backend) volumes.Backend {
	return volumes.Backend{Name: b.Name, Type: string(b.Type), Path: b.Path, Overcommit: b.Overcommit}
}

func tenantFlag() cli.Flag {
	return &cli.StringFlag{Name: "tenant", Usage: "`TENANT` of the volumes: under Kubernetes, the pod's namespace (default: none)"}
}

// volumeID is the volume NAME of -n and --tenant.
func volumeID(c *cli.Context, name string) (volumes.ID, error) {
	return volumes.NewID(namespace(c), c.String("tenant"), name)
}

func openStore(cfg *config.Config) *volumes.Store {
	return volumes.Open(state.Dir(cfg.StateDir).Volumes(), host.Linux{}, volumes.NewLocks())
}

// holder is how persistctl shows in a volume's lock while it works on it:
// a container that wants the volume meanwhile is told who has it.
func holder(c *cli.Context, what string) volumes.Holder {
	return volumes.Holder{Namespace: namespace(c), Container: "persistctl-" + what, Since: time.Now().UTC(), PID: os.Getpid()}
}

// args checks the number of arguments, and the namespace, which names
// directories. Options that followed arguments were moved before them
// (reorder), so what is left are arguments, "-..." ones included when the
// user put them after "--".
func args(c *cli.Context, min, max int) ([]string, error) {
	if err := identifiers.Validate(namespace(c)); err != nil {
		return nil, fmt.Errorf("namespace: %w", err)
	}
	a := c.Args().Slice()
	if len(a) < min || len(a) > max {
		return nil, fmt.Errorf("usage: persistctl %s %s", commandPath(c), c.Command.ArgsUsage)
	}
	return a, nil
}

// argsAndConfig checks the arguments, then loads the config.
func argsAndConfig(c *cli.Context, min, max int) ([]string, *config.Config, error) {
	a, err := args(c, min, max)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(c)
	return a, cfg, err
}

// commandPath is the command's words, like "volumes rm".
func commandPath(c *cli.Context) string {
	var words []string
	for _, x := range c.Lineage() {
		if x.Command != nil && x.Command.Name != "" && x.Command.Name != c.App.Name {
			words = append([]string{x.Command.Name}, words...)
		}
	}
	return strings.Join(words, " ")
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(c *cli.Context, header ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(c.App.Writer, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	return tw
}

func row(tw *tabwriter.Writer, cells ...string) {
	for i, s := range cells {
		if s == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(time.RFC3339)
}

// exitSilently ends with code 1 when the reason was already printed.
var exitSilently = cli.Exit("", 1)
