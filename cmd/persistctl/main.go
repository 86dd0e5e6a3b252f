// persistctl manages what containerd-persist stores: volumes, classes,
// leftovers of dead containers, and checks of the host.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "persistctl: not built yet")
	os.Exit(1)
}
