package shim

import (
	"strings"

	"errors"
	"fmt"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/status"
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

// TestTTRPCErrorIsOneLine: what ctr prints of a failed create is one line
// with the class of the cause, however many errors it joins.
func TestTTRPCErrorIsOneLine(t *testing.T) {
	_, bad := config.Parse([]byte("version = 2\nstate_dir = \"x\"\n"), "test.toml")
	err := errgrpc.ToNative(toTTRPC(errors.Join(classifyConfigError(bad), errors.New("undo: busy"))))
	if !errdefs.IsInvalidArgument(err) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error = %q, want an invalid argument on one line", err)
	}
	if st, _ := status.FromError(toTTRPC(classifyConfigError(bad))); len(st.Details()) != 0 {
		t.Errorf("status details %v, want none: ctr prints each on a line of its own", st.Details())
	}
}
