// persistctl manages what containerd-persist stores: volumes, classes,
// leftovers of dead containers, and checks of the host.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	app := newApp()
	err := app.Run(reorder(app, os.Args))
	if err == nil {
		return
	}
	var exit cli.ExitCoder
	if errors.As(err, &exit) {
		if msg := exit.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "persistctl:", msg)
		}
		os.Exit(exit.ExitCode())
	}
	fmt.Fprintln(os.Stderr, "persistctl:", err)
	os.Exit(1)
}
