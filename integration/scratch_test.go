package integration

import (
	"strings"
	"testing"
)

// Where the image has nothing to lay over, memory scratch is a tmpfs that
// runc makes, with the size and the mode of the image's directory, and
// nothing of it is on the host; where it has content, the scratch is an
// overlay on the host, which the container's delete takes away.
func TestScratchWithoutImageContentIsTmpfs(t *testing.T) {
	tc := newCase(t, `default_class = "c"
[classes.c]
mode = "immutable"
[[classes.c.scratch]]
path = "/run"
size = "4MiB"
[[classes.c.scratch]]
path = "/tmp"
size = "4MiB"
`)
	if out, err := tc.start("tmpfs", image1, nil, "sleep", "600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	out := tc.ctrExec("tmpfs", "sh", "-c", "grep ' /run \\| /tmp ' /proc/self/mounts; stat -c '%n %a' /run /tmp; df -k /run | tail -1; touch /run/x && ls /run; cat /tmp/from-image")
	mustContain(t, out, "tmpfs /run tmpfs", "overlay /tmp overlay", "/run 755", "/tmp 1777", " 4096 ", "\nx\n", "image /tmp file")
	var onHost []string
	for _, m := range mountsUnder(tc.stateDir) {
		if strings.Contains(m, "/scratch/") {
			onHost = append(onHost, m)
		}
	}
	// /tmp's filesystem and its overlay; nothing for /run.
	if len(onHost) != 2 {
		t.Errorf("scratch mounts on the host = %q, want /tmp's two", onHost)
	}
}
