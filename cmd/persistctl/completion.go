package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/urfave/cli/v2"
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "Commands, options and volume names complete; the scripts ask persistctl itself, through urfave/cli's\n" +
			"--generate-bash-completion, so they follow the installed version.\n" +
			"  bash: source <(persistctl completion bash), or save it as /etc/bash_completion.d/persistctl\n" +
			"  zsh:  persistctl completion zsh > \"${fpath[1]}/_persistctl\"\n" +
			"  fish: persistctl completion fish > ~/.config/fish/completions/persistctl.fish",
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1)
			if err != nil {
				return err
			}
			var script string
			switch a[0] {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				if script, err = c.App.ToFishCompletion(); err != nil {
					return err
				}
				script += fishVolumeNames
			default:
				return fmt.Errorf("%w: no completion for shell %q: give bash, zsh or fish", errdefs.ErrInvalidArgument, a[0])
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		},
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				fmt.Fprintln(c.App.Writer, "bash\nzsh\nfish")
			}
		},
	}
}

// completeVolumes completes a command whose first argument is a volume
// NAME: the options after a "-", else the names of the volumes of the
// namespace (and --tenant). Later arguments complete as files.
func completeVolumes(c *cli.Context) {
	if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
		cli.DefaultCompleteWithFlags(c.Command)(c)
		return
	}
	if c.NArg() > 0 && c.Command.Name != "rm" {
		return
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return
	}
	infos, err := openStore(cfg).List(backends(cfg), namespace(c))
	if err != nil {
		return
	}
	for _, v := range infos {
		if !c.IsSet("tenant") || v.Tenant == c.String("tenant") {
			fmt.Fprintln(c.App.Writer, v.Name)
		}
	}
}

// bashCompletion is urfave/cli's autocomplete/bash_autocomplete, made to
// run without the bash-completion package and to name persistctl, since a
// script read from a pipe has no file name to take it from.
const bashCompletion = `# bash completion for persistctl
_persistctl() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
    local opts
    if [[ $cur == -* ]]; then
        opts=$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)
    else
        opts=$("${words[@]}" --generate-bash-completion 2>/dev/null)
    fi
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
}
complete -o bashdefault -o default -F _persistctl persistctl
`

// zshCompletion is urfave/cli's autocomplete/zsh_autocomplete, naming
// persistctl.
const zshCompletion = `#compdef persistctl

_persistctl() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi

  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

compdef _persistctl persistctl
`

// fishVolumeNames adds volume names to urfave/cli's fish script, which
// knows only commands and options: they come from persistctl itself.
const fishVolumeNames = `
function __fish_persistctl_volumes
    set -l words (commandline -opc)
    command $words[1] $words[2..-1] --generate-bash-completion 2>/dev/null
end
complete -c persistctl -n '__fish_seen_subcommand_from inspect rm remove du rename mv set unset' -f -a '(__fish_persistctl_volumes)'
`
