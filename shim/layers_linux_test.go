package shim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
)

func TestLowerOf(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "1", "fs"), filepath.Join(tmp, "2", "fs")
	for _, d := range []string{a, b} {
		mustT(t, os.MkdirAll(d, 0o755))
	}
	root := func(opts ...string) mount.Mount {
		return mount.Mount{Type: "overlay", Source: "overlay", Options: append(opts, "upperdir="+tmp+"/u", "workdir="+tmp+"/w")}
	}
	ab := lowerOf(root("index=off", "lowerdir="+a+":"+b))
	if ab == "" {
		t.Fatal("no identity for two lower dirs")
	}
	if again := lowerOf(root("lowerdir=" + a + ":" + b)); again != ab {
		t.Errorf("the same layers: %q, then %q", ab, again)
	}
	if plus := lowerOf(root("lowerdir+="+a, "lowerdir+="+b)); plus != ab {
		t.Errorf("the same layers given one option each: %q, want %q", plus, ab)
	}
	if ba := lowerOf(root("lowerdir=" + b + ":" + a)); ba == ab || ba == "" {
		t.Errorf("the layers in another order: %q, want another identity", ba)
	}
	for name, m := range map[string]mount.Mount{
		"no lower dirs":     root(),
		"a missing dir":     root("lowerdir=" + a + ":" + filepath.Join(tmp, "3", "fs")),
		"not an overlay":    {Type: "bind", Source: a, Options: []string{"rbind"}},
		"a path with colon": root(`lowerdir=` + a + `\:x`),
	} {
		if got := lowerOf(m); got != "" {
			t.Errorf("%s: %q, want none: containerd is asked", name, got)
		}
	}
	// Another directory at the same path, as after containerd's
	// snapshots started over, is other layers.
	mustT(t, os.Rename(filepath.Join(tmp, "2"), filepath.Join(tmp, "2.old")))
	mustT(t, os.MkdirAll(b, 0o755))
	if got := lowerOf(root("lowerdir=" + a + ":" + b)); got == ab || got == "" {
		t.Errorf("a new directory at the path of a layer: %q, want another identity than %q", got, ab)
	}
}
