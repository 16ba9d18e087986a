// Command sluice is the Sluice rate-limit decision service.
//
//	sluice serve [--config PATH] [--redis URL] [--grpc-addr ADDR] [--http-addr ADDR]
//	sluice check-config PATH
//
// Each serve flag may also come from the environment: SLUICE_CONFIG,
// SLUICE_REDIS, SLUICE_GRPC_ADDR, SLUICE_HTTP_ADDR; a flag wins over its
// variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "sluice:", err)
		}
		os.Exit(1)
	}
}

// errUsage means the usage has been printed already.
var errUsage = errors.New("usage")

const usage = `usage:
  sluice serve [--config PATH] [--redis URL] [--grpc-addr ADDR] [--http-addr ADDR]
  sluice check-config PATH
`

// run is main without the process: testable with its own arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "check-config":
		return checkConfig(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return errUsage
	}
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.ConfigPath, "config", getenv("SLUICE_CONFIG"), "limits config: a YAML file or a directory of them (env SLUICE_CONFIG)")
	fs.StringVar(&cfg.RedisURL, "redis", getenv("SLUICE_REDIS"), "redis:// or rediss:// URL; empty runs the embedded in-memory store (env SLUICE_REDIS)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", envOr(getenv, "SLUICE_GRPC_ADDR", ":8081"), "gRPC listen address (env SLUICE_GRPC_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr(getenv, "SLUICE_HTTP_ADDR", ":8080"), "HTTP listen address (env SLUICE_HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if cfg.ConfigPath == "" {
		fmt.Fprintln(stderr, "serve: --config (or SLUICE_CONFIG) is required")
		return errUsage
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprint(stderr, "usage: sluice check-config PATH\n")
		return errUsage
	}
	set, err := config.Load(args[0])
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				fmt.Fprintln(stderr, p.Error())
			}
			return fmt.Errorf("%s: %d problem(s)", args[0], len(problems))
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (domains: %v)\n", args[0], set.Domains())
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
