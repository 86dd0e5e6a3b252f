package main

import (
	"slices"
	"strings"
	"testing"
)

func TestReorder(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		// As docker and kubectl users type them.
		{"volumes rm NAME --backend local", "volumes rm --backend local NAME"},
		{"volumes rm A B -n ns --backend=local C", "volumes rm -n ns --backend=local A B C"},
		{"volumes create NAME --label a=b --size 1GiB --label c=d", "volumes create --label a=b --size 1GiB --label c=d NAME"},
		{"v ls --json -A", "v ls --json -A"},
		// A switch takes no value: NAME stays an argument.
		{"volumes import --force NAME - --backend local", "volumes import --force --backend local NAME -"},
		{"volumes prune -f --filter label=x", "volumes prune -f --filter label=x"},
		// An option of the app, given after the command, goes back to it.
		{"volumes ls --config /etc/x.toml", "--config /etc/x.toml volumes ls"},
		{"-n a volumes inspect NAME --config=/x -n b", "-n a --config=/x volumes inspect -n b NAME"},
		// After --, every word is an argument.
		{"volumes rm NAME -- -x --backend", "volumes rm -- NAME -x --backend"},
		// Options before the command stay with the app; unknown words and
		// help are left to urfave/cli.
		{"--config x volumes ls", "--config x volumes ls"},
		{"volumes nope NAME --json", "volumes nope NAME --json"},
		{"volumes help rm", "volumes help rm"},
		// An unknown option moves as a switch and is reported as unknown.
		{"volumes rm NAME --nope", "volumes rm --nope NAME"},
		// A completion request is read in place.
		{"volumes rm NAME --generate-bash-completion", "volumes rm NAME --generate-bash-completion"},
		{"", ""},
	} {
		in := append([]string{"persistctl"}, strings.Fields(tc.in)...)
		want := append([]string{"persistctl"}, strings.Fields(tc.want)...)
		if got := reorder(app, in); !slices.Equal(got, want) {
			t.Errorf("reorder(%q)\n = %q\nwant %q", tc.in, got[1:], want[1:])
		}
	}
}
