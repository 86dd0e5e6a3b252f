package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// completionFlag ends the command line when a shell asks urfave/cli for
// completions; it must stay last.
const completionFlag = "--generate-bash-completion"

// reorder puts the options that follow arguments before them, so that
// `persistctl volumes rm NAME --force` works as docker and kubectl users
// type it: urfave/cli, like Go's flag package, stops reading options at
// the first argument. An option that the command does not know but a
// command around it does (--config after volumes ls) goes to that command.
// Words after "--" stay arguments, and a completion request is left as it
// is, since urfave/cli reads it in place.
func reorder(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == completionFlag {
		return args
	}
	type level struct {
		word  string // the command name that opens it; "" for the app
		flags []cli.Flag
		opts  []string
	}
	levels := []*level{{flags: app.Flags}}
	subcommands := app.Commands
	var plain []string // arguments, in their order
	dashes := false
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		word, cur := rest[i], levels[len(levels)-1]
		leaf := len(subcommands) == 0
		switch {
		case word == "--" && leaf:
			dashes, plain = true, append(plain, rest[i+1:]...)
			i = len(rest)
		case isOption(word):
			to, f := cur, findFlag(cur.flags, word)
			for j := len(levels) - 2; f == nil && leaf && j >= 0; j-- {
				if g := findFlag(levels[j].flags, word); g != nil {
					to, f = levels[j], g
				}
			}
			to.opts = append(to.opts, word)
			if takesValue(f, word) && i+1 < len(rest) {
				i++
				to.opts = append(to.opts, rest[i])
			}
		case !leaf:
			cmd := findCommand(subcommands, word)
			if cmd == nil { // help, or a typo: urfave/cli says what is wrong
				plain = append(plain, rest[i:]...)
				i = len(rest)
				break
			}
			levels = append(levels, &level{word: word, flags: cmd.Flags})
			subcommands = cmd.Subcommands
		default:
			plain = append(plain, word)
		}
	}
	out := []string{args[0]}
	for _, l := range levels {
		if l.word != "" {
			out = append(out, l.word)
		}
		out = append(out, l.opts...)
	}
	if dashes {
		out = append(out, "--")
	}
	return append(out, plain...)
}

// isOption reports whether a word is an option: "-" alone names stdin.
func isOption(word string) bool { return len(word) > 1 && word[0] == '-' }

// optionName is the name in -n, --namespace or --namespace=x.
func optionName(word string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(word, "-"), "=")
	return name
}

func findFlag(flags []cli.Flag, word string) cli.Flag {
	name := optionName(word)
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether the option's value is the next word: an
// unknown option is taken for a switch, and urfave/cli reports it.
func takesValue(f cli.Flag, word string) bool {
	if f == nil || strings.Contains(word, "=") {
		return false
	}
	v, ok := f.(cli.DocGenerationFlag)
	return ok && v.TakesValue()
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
