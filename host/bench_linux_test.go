package host

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd-persist/containerd-persist/config"
)

// BenchmarkMakeImage measures what reserving space costs where a container
// start pays for it: a disk scratch image copied from its template, and a
// new volume's mkfs. rm-ns/op is removing the image again, which a
// container delete pays. Run it on the filesystem the state dir lives on:
//
//	go test ./host -run '^$' -bench MakeImage -benchtime 20x
func BenchmarkMakeImage(b *testing.B) {
	requireMkfs(b)
	for _, c := range []struct {
		name string
		size uint64
		o    ImageOptions
	}{
		{"scratch", 64 << 20, ImageOptions{}},
		{"scratch", 1 << 30, ImageOptions{}},
		{"volume", 1 << 30, ImageOptions{Journaled: true}},
	} {
		for _, sparse := range []bool{true, false} {
			o := c.o
			o.Sparse = sparse
			kind := "reserved"
			if sparse {
				kind = "sparse"
			}
			b.Run(fmt.Sprintf("%s/%s/%s", c.name, config.Size(c.size), kind), func(b *testing.B) {
				dir := b.TempDir()
				l := Linux{Templates: filepath.Join(dir, "templates")}
				// The template is made once per size, before any start.
				if err := l.MakeImage(filepath.Join(dir, "first.img"), c.size, o); err != nil {
					b.Fatal(err)
				}
				var rm time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					img := filepath.Join(dir, fmt.Sprintf("%d.img", i))
					if err := l.MakeImage(img, c.size, o); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					start := time.Now()
					if err := os.Remove(img); err != nil {
						b.Fatal(err)
					}
					rm += time.Since(start)
					b.StartTimer()
				}
				b.ReportMetric(float64(rm.Nanoseconds())/float64(b.N), "rm-ns/op")
			})
		}
	}
}
