// iotool runs the bench's write workloads in one directory and prints what
// they took as JSON. The bench builds it static and runs the same binary on
// the host and, bind-mounted, inside containers, so both sides run the very
// same code: busybox has no fio, and a dd per random write would time
// process starts, not writes.
//
//	iotool DIR SEQ_MIB RAND_FILE_MIB RAND_WRITES
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const (
	block = 1 << 20 // sequential write size, as dd bs=1M
	page  = 4 << 10 // random write size
)

type result struct {
	SeqBytes    int64   `json:"seq_bytes"`
	SeqSeconds  float64 `json:"seq_seconds"`
	RandWrites  int     `json:"rand_writes"`
	RandSeconds float64 `json:"rand_seconds"`
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: iotool DIR SEQ_MIB RAND_FILE_MIB RAND_WRITES")
		os.Exit(2)
	}
	dir := os.Args[1]
	seqMiB, err1 := strconv.Atoi(os.Args[2])
	randMiB, err2 := strconv.Atoi(os.Args[3])
	writes, err3 := strconv.Atoi(os.Args[4])
	if err1 != nil || err2 != nil || err3 != nil || seqMiB < 1 || randMiB < 1 || writes < 1 {
		fmt.Fprintln(os.Stderr, "iotool: sizes and counts must be positive integers")
		os.Exit(2)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	var r result
	r.SeqBytes = int64(seqMiB) * block
	r.SeqSeconds, err1 = sequential(filepath.Join(dir, "iotool-seq"), r.SeqBytes)
	if err1 != nil {
		fail(err1)
	}
	r.RandWrites = writes
	r.RandSeconds, err1 = random(filepath.Join(dir, "iotool-rand"), int64(randMiB)*block, writes)
	if err1 != nil {
		fail(err1)
	}
	json.NewEncoder(os.Stdout).Encode(r)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "iotool:", err)
	os.Exit(1)
}

// fill is a buffer of incompressible bytes, the same on every run.
func fill(n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(b)
	return b
}

// sequential writes size bytes in 1 MiB writes and fsyncs, like
// dd bs=1M conv=fsync; the time includes the fsync.
func sequential(path string, size int64) (float64, error) {
	buf := fill(block)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	start := time.Now()
	for done := int64(0); done < size; done += block {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// random writes 4 KiB pages at page-aligned offsets of a file of size bytes
// that is written and synced first, so the timed part overwrites allocated
// blocks rather than filling holes; then it fsyncs. The offsets come from a
// fixed seed: every target sees the same pattern.
func random(path string, size int64, writes int) (float64, error) {
	buf := fill(block)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	for done := int64(0); done < size; done += block {
		if _, err := f.Write(buf[:min(block, size-done)]); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pages := size / page
	start := time.Now()
	for i := range writes {
		off := rng.Int64N(pages) * page
		if _, err := f.WriteAt(buf[(i%256)*page:(i%256+1)*page], off); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}
