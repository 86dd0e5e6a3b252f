package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/volumes"
)

var formatFlag = &cli.StringFlag{Name: "format",
	Usage: "print with a Go `TEMPLATE`, as docker does: '{{.Name}}' prints a line per volume, " +
		"'table {{.Name}}\\t{{.Used}}' a table with headers, json one JSON object per line; " +
		"fields: " + strings.Join(viewFields(), ", ") + `, and {{.Label "KEY"}}`}

// volumeView is a volume as --format templates see it: strings as the
// table prints them, with docker's names where docker has one (.Name,
// .Labels, .Label "KEY"). An unknown value is "".
type volumeView struct {
	Name, Namespace, Tenant, Backend, Type, Class string
	Size, Used                                    string // like 10GiB
	AttachedTo, Since                             string // the holder, "(shared)" for a shared hold
	LastAttached, LastHolder, Created             string
	Dir                                           string
	Labels                                        string // KEY=VALUE,... in key order

	labels map[string]string
	header bool
}

// Label is the value of one label, as in docker's {{.Label "KEY"}}.
func (v volumeView) Label(key string) string {
	if v.header {
		return strings.ToUpper(key)
	}
	return v.labels[key]
}

func newView(i volumes.Info) volumeView {
	v := volumeView{Name: i.Name, Namespace: i.Namespace, Tenant: i.Tenant, Backend: i.Backend, Type: i.Type, Class: i.Class,
		LastAttached: when(i.LastAttached), LastHolder: i.LastHolder, Created: when(i.Created), Dir: i.Dir, labels: i.Labels}
	if i.Size > 0 {
		v.Size = config.Size(i.Size).Approx()
	}
	if i.Used != nil {
		v.Used = config.Size(*i.Used).Approx()
	}
	if i.Holder != nil {
		v.AttachedTo, v.Since = i.Holder.Container, when(i.Holder.Since)
		if v.AttachedTo == "" {
			v.AttachedTo = "(shared)"
		}
	}
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(i.Labels)) {
		kv = append(kv, k+"="+i.Labels[k])
	}
	v.Labels = strings.Join(kv, ",")
	return v
}

// headerView names the columns of a table: each field holds its own name,
// in capitals, words apart (AttachedTo: ATTACHED TO).
func headerView() volumeView {
	v := volumeView{header: true}
	rv := reflect.ValueOf(&v).Elem()
	for i := range rv.NumField() {
		if f := rv.Type().Field(i); f.IsExported() {
			rv.Field(i).SetString(columnName(f.Name))
		}
	}
	return v
}

func columnName(field string) string {
	var b strings.Builder
	for i, r := range field {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func viewFields() []string {
	var names []string
	t := reflect.TypeFor[volumeView]()
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			names = append(names, "."+f.Name)
		}
	}
	return names
}

// templateFuncs are those of docker's --format that fit here.
var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"split": strings.Split,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"truncate": func(s string, n int) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
}

// isTable reports whether --format asks for the default table: unset, or
// "table" alone.
func isTable(format string) bool {
	return strings.TrimSpace(format) == "" || strings.TrimSpace(format) == "table"
}

// printFormatted prints volumes as --format says (see formatFlag); the
// default table is the caller's.
func printFormatted(w io.Writer, format string, infos []volumes.Info) error {
	if strings.TrimSpace(format) == "json" {
		enc := json.NewEncoder(w)
		for _, i := range infos {
			if err := enc.Encode(i); err != nil {
				return err
			}
		}
		return nil
	}
	body, table := strings.CutPrefix(strings.TrimLeft(format, " "), "table ")
	// As docker does: \t and \n typed in quotes are a tab and a newline.
	body = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(body)
	tmpl, err := template.New("format").Funcs(templateFuncs).Option("missingkey=error").Parse(body)
	if err != nil {
		return fmt.Errorf("%w: --format: %w", errdefs.ErrInvalidArgument, err)
	}
	// A field the view lacks fails here, even with no volume to print.
	if err := execLine(io.Discard, tmpl, headerView()); err != nil {
		return err
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		out = tw
		if err := execLine(out, tmpl, headerView()); err != nil {
			return err
		}
	}
	for _, i := range infos {
		if err := execLine(out, tmpl, newView(i)); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

func execLine(w io.Writer, tmpl *template.Template, v volumeView) error {
	var b strings.Builder
	if err := tmpl.Execute(&b, v); err != nil {
		return fmt.Errorf("%w: --format: %w: the fields are %s, and {{.Label \"KEY\"}}",
			errdefs.ErrInvalidArgument, err, strings.Join(viewFields(), ", "))
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}
