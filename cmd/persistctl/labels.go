package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/volumes"
)

func labelFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "label", Usage: "set the label `KEY=VALUE` on it; repeat for more"}
}

func setCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:      "set",
		Usage:     "set labels on a volume that no container holds",
		ArgsUsage: "NAME KEY=VALUE...",
		Description: "Labels are the operator's notes on a volume, kept in its metadata: list them with volumes inspect,\n" +
			"select by them with volumes ls --filter label=KEY=VALUE, print one with --format '{{.Label \"KEY\"}}'.",
		Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
		Action:       func(c *cli.Context) error { return volumesLabel(c, true) },
		BashComplete: completeVolumes,
	}
}

func unsetCommand(backendFlag cli.Flag) *cli.Command {
	return &cli.Command{
		Name:         "unset",
		Usage:        "remove labels from a volume that no container holds",
		ArgsUsage:    "NAME KEY...",
		Flags:        []cli.Flag{namespaceFlag(), tenantFlag(), jsonFlag, backendFlag},
		Action:       func(c *cli.Context) error { return volumesLabel(c, false) },
		BashComplete: completeVolumes,
	}
}

// labelsOf reads KEY=VALUE words; a key given twice takes the last value.
func labelsOf(words []string) (map[string]string, error) {
	if len(words) == 0 {
		return nil, nil
	}
	labels := map[string]string{}
	for _, w := range words {
		k, v, err := volumes.ParseLabel(w)
		if err != nil {
			return nil, err
		}
		labels[k] = v
	}
	return labels, nil
}

// volumesLabel is volumes set (set) and volumes unset.
func volumesLabel(c *cli.Context, set bool) error {
	a, cfg, err := argsAndConfig(c, 2, 1<<20)
	if err != nil {
		return err
	}
	var add map[string]string
	var remove []string
	if set {
		if add, err = labelsOf(a[1:]); err != nil {
			return err
		}
	} else {
		remove = a[1:]
	}
	s, b, id, err := find(c, cfg, a[0])
	if err != nil {
		return err
	}
	m, err := s.SetLabels(b, id, add, remove, holder(c, "label"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		info, err := s.Inspect(b, id)
		if err != nil {
			return err
		}
		return printJSON(c, info)
	}
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		kv = append(kv, k+"="+m.Labels[k])
	}
	if len(kv) == 0 {
		kv = []string{"none"}
	}
	fmt.Fprintf(c.App.Writer, "labels of volume %s: %s\n", id, strings.Join(kv, ", "))
	return nil
}
