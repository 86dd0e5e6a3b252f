//go:build linux

package volumes

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode"

	"github.com/containerd/errdefs"
)

// Label limits: a key is a reverse-DNS or Kubernetes style name, a value
// one line of text, so that both print in a table and in a filter.
const (
	MaxLabelKey   = 253
	MaxLabelValue = 1024
)

// validLabelKey reports whether s is 1 to MaxLabelKey of A-Z a-z 0-9 . _ /
// -, starting and ending with a letter or digit. It is checked by hand, as
// names are: a regexp compiled at package init costs every exec of the shim.
func validLabelKey(s string) bool {
	if s == "" || len(s) > MaxLabelKey || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '/' && c != '-' {
			return false
		}
	}
	return true
}

// ValidateLabel reports whether key=value may label a volume.
func ValidateLabel(key, value string) error {
	if !validLabelKey(key) {
		return fmt.Errorf("%w: label key %s: use 1 to %d of A-Z a-z 0-9 . _ / -, starting and ending with a letter or digit",
			errdefs.ErrInvalidArgument, Quote(key), MaxLabelKey)
	}
	if len(value) > MaxLabelValue || strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return fmt.Errorf("%w: value of label %s: use at most %d bytes, with no control characters such as newlines or tabs",
			errdefs.ErrInvalidArgument, key, MaxLabelValue)
	}
	return nil
}

// ParseLabel splits KEY=VALUE, as given on the command line, and validates
// it. VALUE may be empty; KEY alone is refused, so a forgotten "=" is not
// taken for an empty value.
func ParseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%w: label %s: write KEY=VALUE (KEY= for an empty value)", errdefs.ErrInvalidArgument, Quote(s))
	}
	return key, value, ValidateLabel(key, value)
}

// SetLabels sets the labels in set and removes those named in unset (a
// missing one is no error) on a volume that no container holds, and returns
// its new metadata. It holds the volume's lock, as h, while it reads and
// rewrites volume.json, which is replaced atomically: a shim that attaches
// the volume writes the same file under the same lock. A held volume is
// refused, naming its holder.
func (s *Store) SetLabels(b Backend, id ID, set map[string]string, unset []string, h Holder) (Meta, error) {
	for k, v := range set {
		if err := ValidateLabel(k, v); err != nil {
			return Meta{}, err
		}
	}
	var m Meta
	err := s.withLock(b, id, h, func() error {
		dir := b.Dir(id)
		var err error
		if m, err = readMetaOf(dir, id); err != nil {
			return err
		}
		labels := maps.Clone(m.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, set)
		for _, k := range unset {
			delete(labels, k)
		}
		if len(labels) == 0 {
			labels = nil
		}
		m.Labels = labels
		return WriteMeta(dir, m)
	})
	if errors.Is(err, ErrHeld) {
		who := "a container"
		if holder, held := ReadHolder(b.LockPath(id)); held && holder.Container != "" {
			who = fmt.Sprintf("container %s (namespace %s) since %s", holder.Container, holder.Namespace, holder.Since.Format(time.RFC3339))
		}
		return Meta{}, fmt.Errorf("%w: %w: volume %s is held by %s: its labels change only while no container holds it; set them once that container is deleted",
			errdefs.ErrFailedPrecondition, ErrHeld, id, who)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("label volume %s: %w", id, err)
	}
	return m, nil
}
