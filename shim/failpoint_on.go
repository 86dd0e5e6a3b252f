//go:build failpoints

package shim

// Test builds (go build -tags failpoints) honour the failpoint annotation.
const failpointsEnabled = true
