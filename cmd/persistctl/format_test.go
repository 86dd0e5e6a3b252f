package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/volumes"
)

func TestFormat(t *testing.T) {
	used := uint64(3 << 20)
	infos := []volumes.Info{
		{Meta: volumes.Meta{Name: "pg-data", Namespace: "default", Backend: "sized", Type: "loopfile", Size: 10 << 30, Class: "db",
			Labels: map[string]string{"tier": "gold", "team": "db"}},
			Used: &used, Holder: &volumes.Holder{Container: "pg-1", Since: time.Now()}},
		{Meta: volumes.Meta{Name: "node1", Namespace: "default", Tenant: "shop", Backend: "local", Type: "dir"}},
	}
	for _, tc := range []struct{ format, want string }{
		{"{{.Name}}", "pg-data\nnode1\n"},
		{`{{.Name}} {{.Label "team"}} {{.Labels}}`, "pg-data db team=db,tier=gold\nnode1  \n"},
		{`{{.Name}}\t{{.Size}}|{{.Used}}|{{.AttachedTo}}|{{.Tenant}}`, "pg-data\t10GiB|3MiB|pg-1|\nnode1\t|||shop\n"},
		{"{{upper .Backend}} {{json .Class}}", "SIZED \"db\"\nLOCAL \"\"\n"},
		{"table {{.Name}}\\t{{.AttachedTo}}\\t{{.Label \"tier\"}}",
			"NAME     ATTACHED TO  TIER\npg-data  pg-1         gold\nnode1                 \n"},
	} {
		var b bytes.Buffer
		if err := printFormatted(&b, tc.format, infos); err != nil {
			t.Errorf("--format %q: %v", tc.format, err)
			continue
		}
		if b.String() != tc.want {
			t.Errorf("--format %q printed\n%q\nwant\n%q", tc.format, b.String(), tc.want)
		}
	}

	// json: one object per line, as --json prints each.
	var b bytes.Buffer
	if err := printFormatted(&b, "json", infos); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	var first volumes.Info
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &first) != nil || first.Name != "pg-data" || first.Labels["tier"] != "gold" || *first.Used != used {
		t.Errorf("--format json printed\n%s", b.String())
	}

	// A field the view lacks fails, even with nothing to print.
	for _, bad := range []string{"{{.Nope}}", "{{.Name", `{{.Label}}`} {
		err := printFormatted(&bytes.Buffer{}, bad, nil)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "--format") {
			t.Errorf("--format %q = %v, want InvalidArgument", bad, err)
		}
	}
	if err := printFormatted(&bytes.Buffer{}, "{{.Nope}}", nil); !strings.Contains(err.Error(), ".AttachedTo") {
		t.Errorf("the error of an unknown field does not list the fields: %v", err)
	}
}
