//go:build linux

package volumes

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

func TestRecordFence(t *testing.T) {
	dir := t.TempDir()
	if f, err := ReadFence(dir); err != nil || f.Token != 0 {
		t.Fatalf("fence of a volume never attached in a cluster: %+v, %v", f, err)
	}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := RecordFence(dir, Fence{Token: 10, Node: "node-a", Container: "db-1", At: at}); err != nil {
		t.Fatal(err)
	}
	if err := RecordFence(dir, Fence{Token: 12, Node: "node-b", Container: "db-2", At: at}); err != nil {
		t.Fatalf("a later token: %v", err)
	}
	// node-a's lock was lost while it set up: its older token is refused,
	// and the record stays node-b's.
	err := RecordFence(dir, Fence{Token: 10, Node: "node-a", Container: "db-1", At: at})
	if !errors.Is(err, ErrStaleToken) || !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "node node-b (container db-2)") {
		t.Fatalf("an older token: %v", err)
	}
	if f, err := ReadFence(dir); err != nil || f.Token != 12 || f.Node != "node-b" {
		t.Fatalf("recorded %+v, %v; want node-b's token 12", f, err)
	}
}
