// Package hosttest is a recording host.Mounter for tests, as httptest is a
// server for tests of net/http: code that mounts, unmounts and makes images
// runs against it without root, and a test checks the calls it made, in
// order, with what its journal held at each, and fails any one of them to
// check that the undo of a half-done setup leaves nothing behind.
package hosttest
