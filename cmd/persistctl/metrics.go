package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/urfave/cli/v2"

	"github.com/containerd-persist/containerd-persist/config"
	"github.com/containerd-persist/containerd-persist/host"
	"github.com/containerd-persist/containerd-persist/metrics"
)

func metricsCommand() *cli.Command {
	return &cli.Command{
		Name:  "metrics",
		Usage: "print Prometheus metrics of volumes, scratch, gc leftovers and shim setup times",
		Description: "Without options, prints the Prometheus text exposition once, for every namespace.\n" +
			"--listen ADDR serves it at http://ADDR/metrics until interrupted (one endpoint per host for all shims);\n" +
			"the address bound is printed on stderr. --textfile DIR writes DIR/persist.prom for node_exporter's\n" +
			"textfile collector, atomically.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "serve /metrics on `ADDR` (host:port; port 0 picks one)"},
			&cli.StringFlag{Name: "textfile", Usage: "write persist.prom into `DIR` for node_exporter and exit"},
		},
		Action: metricsAction,
	}
}

// newGatherer returns the host's metrics. The Collector gathers itself: a
// registry would check and sort every sample again, which with thousands of
// volumes costs more than reading them.
func newGatherer(cfg *config.Config) prometheus.Gatherer {
	return metrics.New(metrics.Options{StateDir: cfg.StateDir, Backends: backends(cfg), Mounter: host.Linux{}})
}

func metricsAction(c *cli.Context) error {
	_, cfg, err := argsAndConfig(c, 0, 0)
	if err != nil {
		return err
	}
	reg := newGatherer(cfg)
	switch {
	case c.String("listen") != "" && c.String("textfile") != "":
		return errors.New("--listen and --textfile do not go together: pick one")
	case c.String("textfile") != "":
		dir := c.String("textfile")
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("--textfile %s is not a directory: give node_exporter's --collector.textfile.directory", dir)
		}
		if err := prometheus.WriteToTextfile(filepath.Join(dir, "persist.prom"), reg); err != nil {
			return fmt.Errorf("write metrics to %s: %w", dir, err)
		}
		return nil
	case c.String("listen") != "":
		return serveMetrics(c, reg, c.String("listen"))
	}
	mfs, err := reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics: %w", err)
	}
	enc := expfmt.NewEncoder(c.App.Writer, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}

// serveMetrics serves reg at addr until SIGINT or SIGTERM.
func serveMetrics(c *cli.Context, reg prometheus.Gatherer, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	// One scrape at a time: each reads every volume.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 1}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.App.ErrWriter, "serving metrics on http://%s/metrics\n", l.Addr())
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
