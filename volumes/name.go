package volumes

import (
	"fmt"
	"regexp"

	"github.com/containerd/errdefs"
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidateName reports whether name may name a volume. The pattern keeps
// names single path components: no "/", and ".." cannot start with a dot.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
			"%q is not a valid volume name: use 1 to 63 of a-z 0-9 . _ -, starting with a letter or digit", name))
	}
	return nil
}
