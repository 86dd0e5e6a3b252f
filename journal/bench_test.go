package journal

import (
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkJournal times a container's journal from create to removal: it
// is made and four steps are recorded, as a create does, and it is
// replayed, undoing them, and removed, as a delete does.
//
//	go test ./journal -run '^$' -bench Journal
func BenchmarkJournal(b *testing.B) {
	dir := b.TempDir()
	u := &recordingUndoer{}
	for i := 0; b.Loop(); i++ {
		j, err := Create(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			b.Fatal(err)
		}
		for k := range 4 {
			if err := j.Record(Step{Kind: Dir, Path: filepath.Join(dir, "none", strconv.Itoa(k))}); err != nil {
				b.Fatal(err)
			}
		}
		if err := j.Close(); err != nil {
			b.Fatal(err)
		}
		if err := Replay(j.Path(), u); err != nil {
			b.Fatal(err)
		}
	}
}
