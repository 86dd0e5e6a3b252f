//go:build !failpoints

package shim

const failpointsEnabled = false
