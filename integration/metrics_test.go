package integration

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const metricsConfig = `default_class = "app"

[backends.sized]
type = "loopfile"
path = "{dir}/images"

[classes.app]
mode = "immutable"
[[classes.app.scratch]]
path = "/tmp"
medium = "disk"
size = "32MiB"
[[classes.app.volumes]]
path = "/data"
backend = "sized"
name = "{name}"
size = "64MiB"
`

// TestMetricsLive runs a container that writes 8 MiB into a loopfile
// volume and 4 MiB into its disk scratch, and checks what a live
// persistctl metrics --listen endpoint reports of them.
func TestMetricsLive(t *testing.T) {
	tc := newCase(t, metricsConfig)
	if err := os.Mkdir(filepath.Join(tc.dir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	id := "metrics-live"
	if out, err := tc.start(id, image1, nil, "sh", "-c",
		"dd if=/dev/zero of=/data/f bs=1M count=8 && dd if=/dev/zero of=/tmp/f bs=1M count=4 && sync && touch /data/done && sleep 600"); err != nil {
		t.Fatalf("start: %v: %s", err, out)
	}
	cmd := exec.Command(filepath.Join(daemon.bin, "persistctl"), "--config", tc.configPath, "metrics", "--listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stderr).ReadString('\n')
	if err != nil {
		t.Fatalf("read the listen address: %v", err)
	}
	url := strings.Fields(line)[len(strings.Fields(line))-1]

	// The container's writes end with a sync: scrape until it is done.
	var fams map[string]*dto.MetricFamily
	for range 300 {
		fams = scrape(t, url)
		if value(fams, "persist_volume_used_bytes", "volume", id) >= 8<<20 && value(fams, "persist_scratch_used_bytes", "path", "/tmp") >= 4<<20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	used := value(fams, "persist_volume_used_bytes", "volume", id)
	if used < 8<<20 || used > 10<<20 {
		t.Errorf("volume used %v bytes, want 8 MiB and its metadata", used)
	}
	if c := value(fams, "persist_volume_capacity_bytes", "volume", id); c <= 48<<20 || c > 64<<20 {
		t.Errorf("volume capacity %v, want a little under 64 MiB", c)
	}
	if a := value(fams, "persist_volume_attached", "volume", id); a != 1 {
		t.Errorf("volume attached = %v, want 1", a)
	}
	if h := label(fams, "persist_volume_attached", "volume", id, "holder"); h != tc.namespace+"/"+id {
		t.Errorf("holder %q, want %s/%s", h, tc.namespace, id)
	}
	s := value(fams, "persist_scratch_used_bytes", "path", "/tmp")
	if s < 4<<20 || s > 6<<20 {
		t.Errorf("scratch used %v bytes, want 4 MiB and its metadata", s)
	}
	if m := label(fams, "persist_scratch_used_bytes", "path", "/tmp", "medium"); m != "disk" {
		t.Errorf("scratch medium %q, want disk", m)
	}
	if err := tc.remove(id); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, url)
	if a := value(fams, "persist_volume_attached", "volume", id); a != 0 {
		t.Errorf("after delete: attached = %v", a)
	}
	if u := value(fams, "persist_volume_used_bytes", "volume", id); u < 8<<20 {
		t.Errorf("after delete, from the superblock: used %v, want at least 8 MiB", u)
	}
	if n := histogramCount(fams, "persist_shim_setup_duration_seconds"); n < 1 {
		t.Errorf("setup histogram count %v, want at least 1", n)
	}
	if n := histogramCount(fams, "persist_shim_teardown_duration_seconds"); n < 1 {
		t.Errorf("teardown histogram count %v, want at least 1", n)
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

func find(fams map[string]*dto.MetricFamily, name, key, val string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == key && l.GetValue() == val {
				return m
			}
		}
	}
	return nil
}

func value(fams map[string]*dto.MetricFamily, name, key, val string) float64 {
	return find(fams, name, key, val).GetGauge().GetValue()
}

func label(fams map[string]*dto.MetricFamily, name, key, val, want string) string {
	for _, l := range find(fams, name, key, val).GetLabel() {
		if l.GetName() == want {
			return l.GetValue()
		}
	}
	return ""
}

func histogramCount(fams map[string]*dto.MetricFamily, name string) uint64 {
	var n uint64
	for _, m := range fams[name].GetMetric() {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}
