package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// doctor warns of each backend that overcommits, without failing for it,
// and says so when none does.
func TestDoctorOvercommit(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "persist.toml")
	body := `version = 1
state_dir = "` + dir + `/state"
default_class = "web"
[backends.thin]
type = "loopfile"
path = "` + dir + `/thin"
overcommit = true
[backends.sized]
type = "loopfile"
path = "` + dir + `/sized"
[classes.web]
mode = "immutable"
`
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// No containerd answers there: doctor says so and exits 1, but prints
	// every check.
	address := filepath.Join(dir, "no.sock")
	r := runIn(t, nil, "--config", cfg, "doctor", "--address", address)
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, "overcommit:") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "warning: backend thin overcommits") ||
		!strings.Contains(lines[0], dir+"/thin fills up") || !strings.Contains(lines[0], "remove overcommit = true") {
		t.Errorf("doctor printed overcommit lines %q, want one warning about backend thin:\n%s", lines, r.stdout)
	}

	r = runIn(t, nil, "--config", cfg, "doctor", "--json", "--address", address)
	var checks []check
	if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil {
		t.Fatalf("doctor --json: %v: %s", err, r.stdout)
	}
	var warned []check
	for _, c := range checks {
		if c.Warning {
			warned = append(warned, c)
		}
	}
	if len(warned) != 1 || warned[0].Name != "overcommit" || !warned[0].OK || !strings.Contains(warned[0].Message, "backend thin") {
		t.Errorf("doctor --json warnings = %+v, want one, OK, about backend thin", warned)
	}

	// Without overcommit: an ok line and no warning.
	if err := os.WriteFile(cfg, []byte(strings.Replace(body, "overcommit = true\n", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runIn(t, nil, "--config", cfg, "doctor", "--address", address)
	if strings.Contains(r.stdout, "warning") || !strings.Contains(r.stdout, "overcommit:   ok: every sized volume and scratch area has its space reserved") {
		t.Errorf("doctor without overcommit printed:\n%s", r.stdout)
	}
}

// Each runc version is told what it lacks, by feature.
func TestJudgeRunc(t *testing.T) {
	for _, tc := range []struct {
		version string
		ok      bool
		warning bool
		says    string
	}{
		{"1.4.3", true, false, "ok: 1.4.3 (here)"},
		{"1.4.0", true, false, "ok: 1.4.0"},
		{"v1.5.2", true, false, "ok: v1.5.2"},
		{"1.3.3", true, false, "ok: 1.3.3"},
		{"1.3.2", false, false, "lacks the fixes for container escapes"},
		{"1.3.0", false, false, "CVE-2025-31133"},
		{"1.4.0-rc.2", false, false, "fixed in 1.2.8, 1.3.3 and 1.4.0"},
		{"1.2.8", true, true, "built and tested with runc 1.3 and newer"},
		{"1.2.9", true, true, "has the escape fixes"},
		{"1.2.7", false, false, "install runc 1.3.3 or newer"},
		{"1.1.5+ds1", false, false, "may carry the fixes as patches"},
		{"2.0.0", true, false, "ok: 2.0.0"},
		{"1.3", false, false, "not one doctor can read"},
		{"", false, false, "not one doctor can read"},
	} {
		c := judgeRunc(tc.version, "here")
		if c.OK != tc.ok || c.Warning != tc.warning || !strings.Contains(c.Message, tc.says) {
			t.Errorf("runc %q: %+v, want ok %v, warning %v, saying %q", tc.version, c, tc.ok, tc.warning, tc.says)
		}
	}
}
