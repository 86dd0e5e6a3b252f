package fstree

import "unicode/utf8"

// shortenKeep is how many bytes Shorten keeps at each end of a long path.
const shortenKeep = 100

// Shorten cuts a path longer than about 240 bytes to its first and last 100
// bytes with "…" between, cutting only between runes, so that an error
// about a file deep in a tree stays one line and still names both where it
// starts and what it is (a 21,000-level tree otherwise gives 40 KB errors).
func Shorten(p string) string {
	if len(p) <= 2*shortenKeep+40 {
		return p
	}
	head := shortenKeep
	for head > 0 && !utf8.RuneStart(p[head]) {
		head--
	}
	tail := len(p) - shortenKeep
	for tail < len(p) && !utf8.RuneStart(p[tail]) {
		tail++
	}
	return p[:head] + "…" + p[tail:]
}
