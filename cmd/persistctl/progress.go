package main

import (
	"fmt"
	"github.com/containerd-persist/containerd-persist/config"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// progress draws bytes moved and the rate on stderr, when stderr is a
// terminal; otherwise it is nil and does nothing, so pipes and logs stay
// clean.
type progress struct {
	out   io.Writer
	what  string
	total int64 // 0 when unknown
	n     atomic.Int64
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(c *cli.Context, what string, total int64) *progress {
	f, ok := c.App.ErrWriter.(*os.File)
	if c.App.ErrWriter == nil {
		f, ok = os.Stderr, true
	}
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	p := &progress{out: f, what: what, total: total, start: time.Now(), done: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case <-p.done:
				p.draw(true)
				return
			}
		}
	})
	return p
}

func (p *progress) draw(last bool) {
	n := p.n.Load()
	secs := time.Since(p.start).Seconds()
	rate := uint64(0)
	if secs > 0 {
		rate = uint64(float64(n) / secs)
	}
	line := fmt.Sprintf("%s: %s  %s/s", p.what, config.Size(uint64(n)).Approx(), config.Size(rate).Approx())
	if p.total > 0 {
		const width = 30
		filled := min(width, int(int64(width)*n/p.total))
		line += fmt.Sprintf("  [%s%s] %3d%%", strings.Repeat("=", filled), strings.Repeat(" ", width-filled), min(100, 100*n/p.total))
	}
	end := ""
	if last {
		end = "\n"
	}
	fmt.Fprintf(p.out, "\r\x1b[K%s%s", line, end)
}

func (p *progress) stop() {
	if p == nil {
		return
	}
	close(p.done)
	p.wg.Wait()
}

func (p *progress) writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return countingWriter{w, &p.n}
}

func (p *progress) reader(r io.Reader) io.Reader {
	if p == nil {
		return r
	}
	return countingReader{r, &p.n}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n.Add(int64(n))
	return n, err
}
