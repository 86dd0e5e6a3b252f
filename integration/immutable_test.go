package integration

import (
	"strings"
	"testing"
)

const webConfig = `default_class = "web"

[backends.local]
type = "dir"
path = "{dir}/volumes"

[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
medium = "memory"
size = "8MiB"
[[classes.web.scratch]]
path = "/var/tmp"
medium = "disk"
size = "16MiB"

[classes.hidden]
mode = "immutable"

[classes.open]
mode = "immutable"
selectable = true
`

func TestImmutableRootIsReadOnly(t *testing.T) {
	tc := newCase(t, webConfig)
	out, err := tc.run("ro", image1, nil, "sh", "-c", "touch /etc/x; echo exit=$?")
	if err != nil {
		t.Fatalf("run: %v: %s", err, out)
	}
	mustContain(t, out, "Read-only file system", "exit=1")
}

func TestScratchShowsImageContentAndStartsFresh(t *testing.T) {
	tc := newCase(t, webConfig)
	out := tc.mustRun("s1", image1, nil, "sh", "-c",
		"cat /tmp/from-image && echo mine > /tmp/mine && cat /tmp/mine && stat -c %a /tmp /var/tmp && echo v > /var/tmp/v && cat /var/tmp/v")
	mustContain(t, out, "image /tmp file", "mine", "1777", "v\n")
	out = tc.mustRun("s2", image1, nil, "sh", "-c", "ls /tmp /var/tmp")
	if strings.Contains(out, "mine") || strings.Contains(out, "v\n") {
		t.Errorf("the next container sees the last one's scratch:\n%s", out)
	}
	mustContain(t, out, "from-image")
}

func TestScratchQuota(t *testing.T) {
	tc := newCase(t, webConfig)
	for _, path := range []string{"/tmp", "/var/tmp"} {
		// Writes 32 MiB into a scratch of 8 or 16 MiB, then reports how much
		// landed: dd must fail with ENOSPC and the file stay under the size.
		out := tc.mustRun("q"+strings.ReplaceAll(path, "/", "-"), image1, nil, "sh", "-c",
			"dd if=/dev/zero of="+path+"/fill bs=1M count=32; echo exit=$?; du -k "+path+"/fill")
		mustContain(t, out, "No space left on device", "exit=1")
		var kib int
		for _, line := range strings.Split(out, "\n") {
			if strings.HasSuffix(line, path+"/fill") {
				kib = atoi(strings.Fields(line)[0])
			}
		}
		limit := map[string]int{"/tmp": 8 << 10, "/var/tmp": 16 << 10}[path]
		if kib == 0 || kib > limit {
			t.Errorf("%s: %d KiB written, want some and at most %d KiB:\n%s", path, kib, limit, out)
		}
	}
}

func TestClassSelection(t *testing.T) {
	tc := newCase(t, webConfig)
	out, err := tc.run("c1", image1, []string{class("nope")}, "true")
	if err == nil {
		t.Fatal("an unknown class was accepted")
	}
	mustContain(t, out, `class "nope" is not in config`, "hidden, open, web")
	out, err = tc.run("c2", image1, []string{class("hidden")}, "true")
	if err == nil {
		t.Fatal("a class that is not selectable was picked by annotation")
	}
	mustContain(t, out, `class "hidden" may not be picked by annotation`, "selectable = true")
	// The open class has no scratch: /tmp is the read-only image's.
	out = tc.mustRun("c3", image1, []string{class("open")}, "sh", "-c", "touch /tmp/x; echo exit=$?")
	mustContain(t, out, "Read-only file system", "exit=1")
}

func TestBadConfigIsRefused(t *testing.T) {
	tc := newCase(t, `default_class = "web"
[classes.web]
mode = "immutable"
[[classes.web.scratch]]
path = "/tmp"
size = "12XB"
`)
	out, err := tc.run("bad", image1, nil, "true")
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	mustContain(t, out, "line 8: classes.web.scratch[0].size", `"12XB" is not a size`)
}

func TestRunsWithNoConfig(t *testing.T) {
	tc := newCase(t, "")
	// The embedded default: read-only root, a 64 MiB memory /tmp.
	out := tc.mustRun("noconfig", image1, nil, "sh", "-c", "touch /x; df -k /tmp | tail -1; cat /tmp/from-image")
	mustContain(t, out, "Read-only file system", "65536", "image /tmp file")
	tc.stateDir = "/var/lib/containerd-persist"
}
