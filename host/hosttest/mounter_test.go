package hosttest

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/journal"
)

func TestMounter(t *testing.T) {
	tmp := t.TempDir()
	jpath := filepath.Join(tmp, "journal")
	m := &Mounter{Journal: jpath, FailAt: 3}
	mnt, img := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "disk.img")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}

	// Before the journal exists: no steps.
	if err := m.MakeImage(img, 1<<20, host.ImageOptions{Journaled: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != 0 {
		t.Errorf("image = %v, %v; want an empty file", fi, err)
	}
	j, err := journal.Create(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	step := journal.Step{Kind: journal.Mount, Path: mnt}
	if err := j.Record(step); err != nil {
		t.Fatal(err)
	}
	loop := mount.Mount{Type: "ext4", Source: img, Options: []string{"loop"}}
	if err := m.Mount(loop, mnt); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "data"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The third Mount or MakeImage fails; Unmount does not count.
	if err := m.Unmount(filepath.Join(tmp, "not-mounted")); err != nil {
		t.Errorf("Unmount of what is not mounted = %v", err)
	}
	err = m.Mount(loop, filepath.Join(tmp, "other"))
	if !errors.Is(err, ErrInjected) {
		t.Errorf("third call = %v, want ErrInjected", err)
	}
	var me *host.MountError
	if !errors.As(err, &me) || me.Target != filepath.Join(tmp, "other") || me.Source != img {
		t.Errorf("third call = %#v, want a *host.MountError of it, as host.Linux gives", err)
	}
	if got, want := m.Mounted(), []string{mnt}; !reflect.DeepEqual(got, want) {
		t.Errorf("Mounted = %q, want %q: a failed mount is not mounted", got, want)
	}
	if err := m.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(mnt); len(entries) != 0 || len(m.Mounted()) != 0 {
		t.Errorf("after Unmount: %v in the mountpoint, %q mounted; want nothing", entries, m.Mounted())
	}

	want := []Call{
		{Op: "makeimage", Target: img, Size: 1 << 20, Image: host.ImageOptions{Journaled: true}},
		{Op: "mount", Target: mnt, Mount: loop, Steps: []journal.Step{step}},
		{Op: "unmount", Target: filepath.Join(tmp, "not-mounted"), Steps: []journal.Step{step}},
		{Op: "mount", Target: filepath.Join(tmp, "other"), Mount: loop, Steps: []journal.Step{step}},
		{Op: "unmount", Target: mnt, Steps: []journal.Step{step}},
	}
	if !reflect.DeepEqual(m.Calls, want) {
		t.Errorf("Calls =\n %+v\nwant\n %+v", m.Calls, want)
	}
	if got, want := m.Ops("mount"), []string{"mount " + mnt, "mount " + filepath.Join(tmp, "other")}; !reflect.DeepEqual(got, want) {
		t.Errorf("Ops(mount) = %q, want %q", got, want)
	}
	if got := m.Targets("makeimage"); !reflect.DeepEqual(got, []string{img}) {
		t.Errorf("Targets(makeimage) = %q", got)
	}
}
