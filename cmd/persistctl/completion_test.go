package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shell asks persistctl for completions with urfave/cli's
// --generate-bash-completion; the bash script turns them into COMPREPLY.
func TestCompletion(t *testing.T) {
	w := newWorld(t)
	w.ok("volumes", "create", "--backend", "local", "app")
	w.ok("volumes", "create", "--backend", "local", "api")
	w.ok("-n", "other", "volumes", "create", "--backend", "local", "elsewhere")

	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"volumes"}, []string{"ls", "prune", "rename", "set", "unset", "exists"}, nil},
		{[]string{"volumes", "rm"}, []string{"api", "app"}, []string{"elsewhere"}},
		{[]string{"volumes", "rm", "app"}, []string{"api", "app"}, nil}, // rm takes several
		{[]string{"-n", "other", "volumes", "inspect"}, []string{"elsewhere"}, []string{"app"}},
		{[]string{"volumes", "rename", "app"}, nil, []string{"api"}}, // the new name is new
		{[]string{"volumes", "ls", "--fi"}, []string{"--filter"}, nil},
		{[]string{"completion"}, []string{"bash", "zsh", "fish"}, nil},
	} {
		out := w.ok(append(tc.args, "--generate-bash-completion")...)
		words := strings.Fields(out)
		for _, want := range tc.want {
			if !strings.Contains(" "+strings.Join(words, " ")+" ", " "+want+" ") {
				t.Errorf("completion of %q lacks %q: %q", tc.args, want, words)
			}
		}
		for _, not := range tc.not {
			if strings.Contains(out, not) {
				t.Errorf("completion of %q offers %q: %q", tc.args, not, words)
			}
		}
	}

	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -F _persistctl persistctl",
		"zsh":  "compdef _persistctl persistctl",
		"fish": "complete -c persistctl -n '__fish_seen_subcommand_from prune' -f -l force -s f",
	} {
		if script := w.ok("completion", shell); !strings.Contains(script, want) || !strings.Contains(script, "--generate-bash-completion") {
			t.Errorf("completion %s lacks %q:\n%s", shell, want, script)
		}
	}
	if r := w.run(nil, "completion", "tcsh"); r.code != 1 || !strings.Contains(r.stderr, "give bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d, %q", r.code, r.stderr)
	}

	// The bash script, as bash runs it on TAB, with persistctl on PATH.
	bin := t.TempDir()
	if err := os.Symlink(binary, filepath.Join(bin, "persistctl")); err != nil {
		t.Fatal(err)
	}
	scriptFile := filepath.Join(bin, "persistctl.bash")
	if err := os.WriteFile(scriptFile, []byte(w.ok("completion", "bash")), 0o600); err != nil {
		t.Fatal(err)
	}
	tab := func(line string) string {
		t.Helper()
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		cmd := exec.Command("bash", "--norc", "-c", `source "$1"; COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _persistctl; echo "${COMPREPLY[*]}"`, "bash", scriptFile)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash completion of %q: %v: %s", line, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	cfg := "persistctl --config " + w.config + " "
	for line, want := range map[string]string{
		cfg + "volumes pr":     "prune",
		cfg + "volumes rm ap":  "api app",
		cfg + "volumes ls --q": "--quiet",
		"persistctl compl":     "completion",
	} {
		if got := tab(line); got != want {
			t.Errorf("TAB after %q offers %q, want %q", line, got, want)
		}
	}
}
