package shim

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/containerd-persist/containerd-persist/config"
)

// TestConfigErrorClass: a config that cannot be had keeps its cause, and
// gets the class that says why: only a bad config is an invalid argument.
func TestConfigErrorClass(t *testing.T) {
	_, bad := config.Parse([]byte("version = 2\n"), "test.toml")
	tests := []struct {
		name  string
		err   error
		class func(error) bool
	}{
		{"bad config", bad, errdefs.IsInvalidArgument},
		{"unreadable file", fmt.Errorf("read config x: %w", fs.ErrPermission), errdefs.IsPermissionDenied},
		{"missing file", fmt.Errorf("read config x: %w", fs.ErrNotExist), errdefs.IsNotFound},
		{"file others may write", errors.New("persist.toml is writable by group or others"), errdefs.IsFailedPrecondition},
	}
	for _, tt := range tests {
		got := classifyConfigError(tt.err)
		if !tt.class(got) || !errors.Is(got, tt.err) {
			t.Errorf("%s: %v, want its class and its cause kept", tt.name, got)
		}
	}
}
