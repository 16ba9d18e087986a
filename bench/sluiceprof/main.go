// Command sluiceprof is `sluice serve` with a CPU profile, for the bench
// harness's -cpuprofile flag: it runs the same server.Server as cmd/sluice and
// writes the profile when it is stopped with SIGINT or SIGTERM.
//
//	sluiceprof serve --config F --redis URL --grpc-addr A --http-addr B --cpuprofile FILE
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/sluice-rl/sluice/internal/gctune"
	"github.com/sluice-rl/sluice/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluiceprof:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) (err error) {
	if len(args) == 0 || args[0] != "serve" {
		return errors.New("usage: sluiceprof serve [flags]")
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg server.Config
	var profile string
	fs.StringVar(&cfg.ConfigPath, "config", "", "limits config")
	fs.StringVar(&cfg.RedisURL, "redis", "", "redis:// URL")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", "127.0.0.1:8081", "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&profile, "cpuprofile", "", "write a CPU profile here (required)")
	admin := fs.String("admin-addr", "off", "admin API listen address; off: none")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *admin != "off" {
		cfg.AdminAddr = *admin
	}
	if profile == "" {
		return errors.New("--cpuprofile is required")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	gctune.Tune(os.Getenv) // as cmd/sluice does, so that the profile matches it
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	f, err := os.Create(profile)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return srv.Run(ctx)
}
