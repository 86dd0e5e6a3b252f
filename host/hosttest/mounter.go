package hosttest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
)

// ErrInjected is the error of the call that Mounter.FailAt names.
var ErrInjected = errors.New("injected failure")

// Call is one call to a Mounter.
type Call struct {
	Op     string // "mount", "unmount" or "makeimage"
	Target string // the mountpoint, or the image's path
	Mount  mount.Mount
	Size   uint64            // of an image
	Image  host.ImageOptions // of an image
	// Steps is the journal as it was on disk when the call was made, when
	// Mounter.Journal is set.
	Steps []journal.Step
}

// Mounter records calls instead of making them. A mounted target stays a
// plain directory: what the code under test writes there stands for the
// mounted filesystem's content, and goes at Unmount, as it would.
// Unmounting what is not mounted is success, as with host.Linux. MakeImage
// makes an empty file. The zero value is ready to use, and safe for
// concurrent use; read Calls once the code under test has returned.
type Mounter struct {
	// Journal, when set, is read at every call into Call.Steps, so that a
	// test can check that each action was journaled before it was taken. A
	// journal that does not exist (yet, or any more) reads as no steps.
	Journal string
	// FailAt makes the FailAt-th call to Mount or MakeImage fail with
	// ErrInjected, counted from 1; 0 fails none. A failed Mount's error is
	// a *host.MountError, as host.Linux's is. Unmount never fails.
	FailAt int
	// Calls are the calls made, in order.
	Calls []Call

	mu      sync.Mutex
	n       int // Mount and MakeImage calls
	mounted map[string]bool
}

var _ host.Mounter = (*Mounter)(nil)

// record adds c and returns the error it is to fail with.
func (m *Mounter) record(c Call) error {
	if m.Journal != "" {
		steps, err := journal.Read(m.Journal)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hosttest: read journal: %w", err)
		}
		c.Steps = steps
	}
	m.Calls = append(m.Calls, c)
	if c.Op == "unmount" {
		return nil
	}
	m.n++
	if m.n != m.FailAt {
		return nil
	}
	if c.Op == "mount" {
		return &host.MountError{Op: c.Op, Type: c.Mount.Type, Source: c.Mount.Source, Target: c.Target, Options: c.Mount.Options, Err: ErrInjected}
	}
	return fmt.Errorf("%s %s: %w", c.Op, c.Target, ErrInjected)
}

// Mount implements host.Mounter.
func (m *Mounter) Mount(mnt mount.Mount, target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(Call{Op: "mount", Target: target, Mount: mnt}); err != nil {
		return err
	}
	if m.mounted == nil {
		m.mounted = map[string]bool{}
	}
	m.mounted[target] = true
	return nil
}

// Unmount implements host.Mounter: the content of a mounted target goes.
func (m *Mounter) Unmount(target string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(Call{Op: "unmount", Target: target}); err != nil {
		return err
	}
	if !m.mounted[target] {
		return nil
	}
	delete(m.mounted, target)
	entries, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(target, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// MakeImage implements host.Mounter with an empty file at path.
func (m *Mounter) MakeImage(path string, size uint64, o host.ImageOptions) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.record(Call{Op: "makeimage", Target: path, Size: size, Image: o}); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}

// Ops lists the calls as "op target", in order; with ops, only those.
func (m *Mounter) Ops(ops ...string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.Calls {
		if len(ops) == 0 || slices.Contains(ops, c.Op) {
			out = append(out, c.Op+" "+c.Target)
		}
	}
	return out
}

// Targets lists the targets of the calls of op, in order.
func (m *Mounter) Targets(op string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.Calls {
		if c.Op == op {
			out = append(out, c.Target)
		}
	}
	return out
}

// Mounted lists the targets that are mounted now, sorted.
func (m *Mounter) Mounted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.mounted))
	for t := range m.mounted {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
