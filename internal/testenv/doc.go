// Package testenv says what a test needs of the machine it runs on. A test
// that cannot run here is skipped, except under CI (CI set in the
// environment): CI must run every test, and a skip there would let what the
// test covers rot unseen, so there it fails, saying what to do.
package testenv
