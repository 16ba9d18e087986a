// Command sluice-gateway is a reference API gateway built on Sluice's client
// library: it routes calls by context path to REST or AI backends, picks the
// production or sandbox backend by the caller's API key, and asks Sluice
// before each call whether the backend's cap allows it.
//
//	sluice-gateway --config gateway.yaml
//
// The config path may also come from SLUICE_GATEWAY_CONFIG; --listen and
// --sluice override the file's addresses. See deploy/gateway/gateway.yaml.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-rl/sluice/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "sluice-gateway:", err)
		}
		os.Exit(1)
	}
}

// errUsage means the usage has been printed already.
var errUsage = errors.New("usage")

// run is main without the process. It serves until ctx ends, then drains:
// calls in flight finish and queued usage reports are sent, within the
// config's drain_timeout. Once listening it writes "listening on ADDR" to
// stdout (followed by ", metrics on ADDR" with metrics_listen).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", getenv("SLUICE_GATEWAY_CONFIG"), "gateway config YAML (env SLUICE_GATEWAY_CONFIG)")
	listen := fs.String("listen", "", "listen address; overrides the config's listen")
	sluice := fs.String("sluice", "", "Sluice gRPC address; overrides the config's sluice")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if *path == "" {
		fmt.Fprintln(stderr, "--config (or SLUICE_GATEWAY_CONFIG) is required")
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *sluice != "" {
		cfg.Sluice = *sluice
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	return serve(ctx, cfg, log, stdout)
}

// serve runs the gateway of cfg until ctx ends.
func serve(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer) error {
	mode, _ := client.ParseFailureMode(cfg.FailureMode) // validated
	opts := []client.Option{client.WithTimeout(cfg.Timeout), client.WithFailureMode(mode)}
	if cfg.SluiceTLS {
		opts = append(opts, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if cfg.SluiceTokenFile != "" {
		raw, err := os.ReadFile(cfg.SluiceTokenFile)
		if err != nil {
			return fmt.Errorf("sluice_token_file: %w", err)
		}
		opts = append(opts, client.WithAuthToken(strings.TrimSpace(string(raw))))
	}
	c, err := client.New(cfg.Sluice, opts...)
	if err != nil {
		return err
	}
	g, err := newGateway(cfg, c, log)
	if err != nil {
		_ = c.Close(context.Background())
		return err
	}
	defer g.transport.CloseIdleConnections()
	// Dial Sluice and make one call before taking traffic, so that the first
	// check does not spend its timeout on the connection.
	warm, cancelWarm := context.WithTimeout(ctx, cfg.WarmTimeout)
	if err := c.Warm(warm); err != nil {
		log.Warn("sluice-gateway: sluice not reachable at start-up; checks fail "+cfg.FailureMode+" until it is", "err", err)
	}
	cancelWarm()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = c.Close(context.Background())
		return err
	}
	// No ReadTimeout or WriteTimeout here: an answer may stream for minutes,
	// and net/http cancels a request's context when its read deadline passes.
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	addrs := ln.Addr().String()
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			_ = srv.Close()
			_ = c.Close(context.Background())
			return fmt.Errorf("metrics_listen: %w", err)
		}
		msrv := &http.Server{Handler: metricsHandler(c.Stats), ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { _ = msrv.Serve(mln) }()
		defer msrv.Close()
		addrs += ", metrics on " + mln.Addr().String()
	}
	log.Info("sluice-gateway started", "listen", ln.Addr().String(), "metrics", cfg.MetricsListen, "sluice", cfg.Sluice,
		"domain", cfg.Domain, "failure_mode", cfg.FailureMode, "apis", len(cfg.APIs))
	fmt.Fprintf(stdout, "listening on %s\n", addrs)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-done:
	}
	drain, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	shutErr := srv.Shutdown(drain)
	if serveErr == nil {
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if err := c.Close(drain); err != nil {
		// Reports Sluice could not take are counted lost; not a reason to
		// fail the shutdown.
		log.Warn("sluice-gateway: usage reports lost at shutdown", "err", err)
	}
	log.Info("sluice-gateway stopped", "stats", fmt.Sprintf("%+v", c.Stats()))
	return errors.Join(serveErr, shutErr)
}
