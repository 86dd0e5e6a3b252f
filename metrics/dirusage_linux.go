package metrics

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/atomicfile"
	"golang.org/x/sys/unix"

	"github.com/containerd-persist/containerd-persist/fstree"
)

// dirUsage is what a walk of a dir volume's content found.
type dirUsage struct {
	Bytes  uint64    `json:"bytes"` // allocated, like du
	Inodes uint64    `json:"inodes"`
	At     time.Time `json:"at"`
}

// dirCache holds the walks of dir volumes, by content directory, in memory
// and in <state_dir>/metrics/dirusage.json so that one-shot runs share
// them. Entries older than TTL are walked again, oldest first, while the
// scrape's budget of entries lasts; a walk that runs out of budget is
// dropped and its volume keeps its older figure, or has none yet.
type dirCache struct {
	path   string
	ttl    time.Duration
	budget int

	mu      sync.Mutex
	entries map[string]dirUsage
	loaded  bool
}

var errBudget = errors.New("walk budget spent")

func (c *dirCache) load() {
	if c.loaded {
		return
	}
	c.loaded = true
	c.entries = map[string]dirUsage{}
	if b, err := os.ReadFile(c.path); err == nil {
		_ = json.Unmarshal(b, &c.entries) // a bad cache is a cold one
	}
}

// usage returns the figures of the content directories dirs, walking the
// stale ones within the budget. Directories not asked for are forgotten.
func (c *dirCache) usage(dirs []string, now time.Time) map[string]dirUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.load()
	var stale []string
	keep := make(map[string]dirUsage, len(dirs))
	for _, d := range dirs {
		u, ok := c.entries[d]
		if ok {
			keep[d] = u
		}
		if !ok || now.Sub(u.At) >= c.ttl {
			stale = append(stale, d)
		}
	}
	changed := len(keep) != len(c.entries)
	slices.SortStableFunc(stale, func(a, b string) int { return keep[a].At.Compare(keep[b].At) })
	left := c.budget
	for _, d := range stale {
		if left <= 0 {
			break
		}
		u, n, err := walk(d, left)
		left -= n
		if err != nil {
			continue
		}
		u.At = now
		keep[d] = u
		changed = true
	}
	c.entries = keep
	if changed {
		if b, err := json.Marshal(keep); err == nil {
			_ = os.MkdirAll(filepath.Dir(c.path), 0o700)
			_ = writeFile(c.path, b) // a cache: losing it costs a walk
		}
	}
	out := make(map[string]dirUsage, len(keep))
	for k, v := range keep {
		out[k] = v
	}
	return out
}

// walk measures dir like du: allocated bytes and inodes, hard links once,
// no link followed, no other mount entered (fstree.Walk). It stops after
// max entries; n is how many it visited.
func walk(dir string, max int) (u dirUsage, n int, err error) {
	type fileID struct{ dev, ino uint64 }
	seen := map[fileID]bool{}
	err = fstree.Walk(dir, func(e *fstree.Entry) error {
		if n++; n > max {
			return errBudget
		}
		st := &e.Stat
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			id := fileID{uint64(st.Dev), st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		u.Inodes++
		u.Bytes += uint64(st.Blocks) * 512
		return nil
	})
	return u, n, err
}

// writeFile replaces path with data whole.
func writeFile(path string, data []byte) error {
	f, err := atomicfile.New(path, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Cancel()
		return err
	}
	return f.Close()
}
