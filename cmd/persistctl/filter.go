package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/volumes"
)

// filterFlag is --filter; -f too where it means nothing else (prune's -f
// is --force, as docker's is).
func filterFlag(short bool) cli.Flag {
	f := &cli.StringSliceFlag{Name: "filter",
		Usage: "only volumes that match `KEY=VALUE`: name (a regular expression), namespace, tenant, backend, type, class, " +
			"attached or dangling (true or false), label and label! (KEY or KEY=VALUE). " +
			"Repeated, a volume must match one value of each key and every label condition"}
	if short {
		f.Aliases = []string{"f"}
	}
	return f
}

// volumeFilter is --filter, as docker volume ls reads it: a volume matches
// one of the values given for each key, and all the label conditions.
type volumeFilter struct {
	anyOf map[string][]func(volumes.Info) bool
	allOf []func(volumes.Info) bool
}

// filterKeys are the keys --filter takes, and what each tests.
var filterKeys = map[string]func(value string) (func(volumes.Info) bool, error){
	"name": func(v string) (func(volumes.Info) bool, error) {
		re, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("name=%s is not a regular expression: %w", v, err)
		}
		return func(i volumes.Info) bool { return re.MatchString(i.Name) }, nil
	},
	"namespace": equal(func(i volumes.Info) string { return i.Namespace }),
	"tenant":    equal(func(i volumes.Info) string { return i.Tenant }),
	"backend":   equal(func(i volumes.Info) string { return i.Backend }),
	"type":      equal(func(i volumes.Info) string { return i.Type }),
	"class":     equal(func(i volumes.Info) string { return i.Class }),
	"attached":  held(true),
	// As docker means it: no container uses the volume.
	"dangling": held(false),
	"label":    label(true),
	"label!":   label(false),
}

func equal(field func(volumes.Info) string) func(string) (func(volumes.Info) bool, error) {
	return func(v string) (func(volumes.Info) bool, error) {
		return func(i volumes.Info) bool { return field(i) == v }, nil
	}
}

func held(want bool) func(string) (func(volumes.Info) bool, error) {
	return func(v string) (func(volumes.Info) bool, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", v)
		}
		return func(i volumes.Info) bool { return (i.Holder != nil) == (b == want) }, nil
	}
}

func label(want bool) func(string) (func(volumes.Info) bool, error) {
	return func(v string) (func(volumes.Info) bool, error) {
		key, value, withValue := strings.Cut(v, "=")
		if key == "" {
			return nil, fmt.Errorf("name a label KEY or KEY=VALUE")
		}
		return func(i volumes.Info) bool {
			got, ok := i.Labels[key]
			return (ok && (!withValue || got == value)) == want
		}, nil
	}
}

// parseFilter reads the --filter values.
func parseFilter(in []string) (*volumeFilter, error) {
	f := &volumeFilter{anyOf: map[string][]func(volumes.Info) bool{}}
	for _, s := range in {
		key, value, ok := strings.Cut(s, "=")
		newMatch, known := filterKeys[key]
		if !ok || !known {
			return nil, fmt.Errorf("%w: --filter %s: write KEY=VALUE with KEY one of %s",
				errdefs.ErrInvalidArgument, volumes.Quote(s), strings.Join(slices.Sorted(maps.Keys(filterKeys)), ", "))
		}
		match, err := newMatch(value)
		if err != nil {
			return nil, fmt.Errorf("%w: --filter %s: %w", errdefs.ErrInvalidArgument, volumes.Quote(s), err)
		}
		if strings.HasPrefix(key, "label") {
			f.allOf = append(f.allOf, match)
		} else {
			f.anyOf[key] = append(f.anyOf[key], match)
		}
	}
	return f, nil
}

func (f *volumeFilter) match(i volumes.Info) bool {
	for _, preds := range f.anyOf {
		if !slices.ContainsFunc(preds, func(p func(volumes.Info) bool) bool { return p(i) }) {
			return false
		}
	}
	for _, p := range f.allOf {
		if !p(i) {
			return false
		}
	}
	return true
}

// apply keeps the volumes that match.
func (f *volumeFilter) apply(infos []volumes.Info) []volumes.Info {
	return slices.DeleteFunc(infos, func(i volumes.Info) bool { return !f.match(i) })
}
