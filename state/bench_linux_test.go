package state

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/internal/testenv"
	"github.com/containerd-persist/containerd-persist/journal"
	"github.com/containerd-persist/containerd-persist/volumes"
)

// BenchmarkVolume times what a container start and delete pay for a volume
// that exists: at create the journal, the volume's lock and metadata, a
// loopfile volume's mount, and a machine root's upper and work dirs; at
// delete the Undoer's release (syncfs, unmount, unlock), as the shim's
// delete does it.
//
//	go test ./state -run '^$' -bench Volume
func BenchmarkVolume(b *testing.B) {
	testenv.NeedRoot(b)
	for _, typ := range []string{volumes.Dir, volumes.Loopfile} {
		b.Run(typ, func(b *testing.B) {
			tmp := b.TempDir()
			d := Dir(filepath.Join(tmp, "state"))
			backend := volumes.Backend{Name: "b", Type: typ, Path: filepath.Join(tmp, "volumes")}
			if err := os.Mkdir(backend.Path, 0o700); err != nil {
				b.Fatal(err)
			}
			id, err := volumes.NewID("ns", "", "v")
			if err != nil {
				b.Fatal(err)
			}
			holder := volumes.Holder{Namespace: "ns", Container: "c", PID: os.Getpid()}
			locks := volumes.NewLocks()
			store := volumes.Open(d.Volumes(), host.Linux{}, locks)
			u := Undoer{Mounter: host.Linux{}, Locks: locks, Holder: holder}
			// The volume is made once, before any start: starts reattach it.
			if err := store.Create(backend, id, volumes.Meta{Size: 64 << 20}); err != nil {
				b.Fatal(err)
			}
			jpath := d.Journal("ns", "c")
			var attach, release time.Duration
			for b.Loop() {
				start := time.Now()
				j, err := journal.Create(jpath)
				if err != nil {
					b.Fatal(err)
				}
				a, err := store.Attach(j, volumes.AttachOptions{ID: id, Backend: backend, Class: "vm", Holder: holder})
				if err != nil {
					b.Fatal(err)
				}
				for _, sub := range []string{"upper", "work"} {
					if _, err := a.Subdir(sub, host.Owner{Mode: 0o755}); err != nil {
						b.Fatal(err)
					}
				}
				if err := j.Close(); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := u.Release(jpath); err != nil {
					b.Fatal(err)
				}
				attach, release = attach+mid.Sub(start), release+time.Since(mid)
			}
			b.ReportMetric(float64(attach.Nanoseconds())/float64(b.N), "attach-ns/op")
			b.ReportMetric(float64(release.Nanoseconds())/float64(b.N), "release-ns/op")
		})
	}
}
