// Command sluice is the Sluice rate-limit decision service.
//
//	sluice serve [--config PATH [--merge-domain-config]] [--redis URL] [--grpc-addr ADDR] [--http-addr ADDR] [--health-addr ADDR]
//	             [--redis-tls-ca FILE] [--redis-tls-cert FILE --redis-tls-key FILE] [--redis-tls-skip-hostname-verification]
//	             [--redis-pool-size N] [--key-prefix PREFIX]
//	             [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--auth-token-file FILE [--decide-token-file FILE]]
//	             [--max-descriptor-bytes N] [--max-request-bytes N] [--over-limit-cache-bytes N]
//	             [--admin-addr ADDR|off [--admin-token-file FILE [--admin-read-token-file FILE]]]
//	             [--log-format text|json] [--log-level debug|info|warn|error]
//	             [--quota-mode] [--shadow-mode] [--envoy-response-headers [--envoy-header-names L,R,R]] [--envoy-dynamic-metadata]
//	             [--leases auto|off] [--counter-layout packed|hash]
//	             [--config-type file|grpc-xds-sotw [--xds-server HOST:PORT] [--xds-node-id ID] [--xds-tls ...] [--xds-backoff-* ...]]
//	sluice check-config [--merge-domain-config] PATH
//	sluice limits list|get|set|delete --domain DOMAIN [--admin ADDR] ...
//	sluice version (or --version)
//
// Each serve flag --a-b may also come from the environment variable
// SLUICE_A_B (SLUICE_CONFIG, SLUICE_REDIS, SLUICE_REDIS_TLS_CERT, ...);
// --auth-token-file and --decide-token-file also take the token itself in
// SLUICE_AUTH_TOKEN and SLUICE_DECIDE_TOKEN. A flag wins over its variable.
// Under the SLUICE_* variables, envoyproxy/ratelimit's own settings
// (RUNTIME_ROOT, REDIS_URL, REDIS_TYPE, PORT, GRPC_PORT, ...) are read, so
// that its Deployment runs unchanged: upstreamenv.go maps every one of them,
// and those Sluice does not honour are named in one start-up warning
// (docs/deployment.md). Unless GOGC is set, the garbage collector runs at
// GOGC=400 (internal/gctune). Traces are exported over OTLP/gRPC when the
// standard OTEL_* variables ask for it (see telemetry.TracerProviderFromEnv);
// with none set, nothing is exported.
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
	"strings"
	"syscall"
	"time"

	"github.com/sluice-rl/sluice/internal/gctune"
	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/telemetry"
)

func main() {
	gctune.Tune(os.Getenv)
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
  sluice serve [--config PATH [--merge-domain-config]] [--redis URL] [--grpc-addr ADDR] [--http-addr ADDR] [--health-addr ADDR]
               [--redis-tls-ca FILE] [--redis-tls-cert FILE --redis-tls-key FILE] [--redis-tls-skip-hostname-verification]
               [--redis-pool-size N] [--key-prefix PREFIX]
               [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [--auth-token-file FILE [--decide-token-file FILE]]
               [--max-descriptor-bytes N] [--max-request-bytes N] [--over-limit-cache-bytes N]
               [--admin-addr ADDR|off [--admin-token-file FILE [--admin-read-token-file FILE]]]
               [--log-format text|json] [--log-level debug|info|warn|error]
               [--quota-mode] [--shadow-mode] [--envoy-response-headers [--envoy-header-names L,R,R]] [--envoy-dynamic-metadata]
               [--leases auto|off] [--counter-layout packed|hash]
               [--config-type file|grpc-xds-sotw [--xds-server HOST:PORT] [--xds-node-id ID] [--xds-tls ...] [--xds-backoff-* ...]]
  (envoyproxy/ratelimit's variables are read too: docs/deployment.md)
  sluice check-config [--merge-domain-config] PATH
  sluice limits list|get|set|delete --domain DOMAIN [--admin ADDR] ...   (sluice limits for more)
  sluice version   (or --version)
`

// run is main without the process: testable with its own arguments,
// environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	if isVersionCommand(args[0]) {
		return printVersion(stdout)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "check-config":
		return checkConfig(args[1:], getenv, stdout, stderr)
	case "limits":
		return limits(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)
		return errUsage
	}
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	// envoyproxy/ratelimit's own variables give defaults to the SLUICE_* ones (upstreamenv.go)
	getenv, upstream, upstreamErrs := upstreamEnv(getenv)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	e := &envFlags{fs: fs, getenv: getenv}
	e.string(&cfg.ConfigPath, "config", "", "limits config: a YAML file or a directory of them")
	e.bool(&cfg.MergeDomainConfig, "merge-domain-config", false, mergeDomainsUsage)
	// envoyproxy/ratelimit's answers on Envoy's API
	e.bool(&cfg.QuotaMode, "quota-mode", false, "every descriptor in quota mode, as envoyproxy/ratelimit's QUOTA_MODE=true")
	e.bool(&cfg.EnvoyResponseHeaders, "envoy-response-headers", false, "Envoy's API sends RateLimit-Limit, -Remaining and -Reset (renamed by --envoy-header-names), as envoyproxy/ratelimit's LIMIT_RESPONSE_HEADERS_ENABLED=true")
	e.bool(&cfg.EnvoyDynamicMetadata, "envoy-dynamic-metadata", false, "Envoy's API fills the response's dynamic_metadata, as envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA=true")
	finishFlags := addServeFlags(e, &cfg)
	e.string(&cfg.RedisURL, "redis", "", "redis://, rediss://, redis+sentinel://host:port[,...]/MASTER or redis+cluster://host:port[,...] (TLS: rediss+...); empty runs the embedded in-memory store")
	e.string(&cfg.GRPCAddr, "grpc-addr", ":8081", "gRPC listen address")
	e.string(&cfg.HTTPAddr, "http-addr", ":8080", "HTTP listen address")
	e.string(&cfg.HealthAddr, "health-addr", "", "also serve /healthz, /readyz and /metrics here, always plain HTTP (for probes when the ports use mutual TLS); empty: off")
	e.string(&cfg.TLSCertFile, "tls-cert", "", "PEM certificate: serve both ports over TLS, reloaded when the file changes")
	e.string(&cfg.TLSKeyFile, "tls-key", "", "PEM key of --tls-cert")
	e.string(&cfg.TLSClientCAFile, "tls-client-ca", "", "PEM CAs: require client certificates signed by them, mutual TLS")
	var tokenFile, decideTokenFile string
	e.string(&tokenFile, "auth-token-file", "", "file holding the full bearer token, then required on every gRPC and JSON API call but health; or the token itself in SLUICE_AUTH_TOKEN")
	e.string(&decideTokenFile, "decide-token-file", "", "file holding a decide-only bearer token: ShouldRateLimit and GetUsage, never refunds, reports, token hits or limit overrides; needs --auth-token-file; or the token itself in SLUICE_DECIDE_TOKEN")
	e.bytes(&cfg.Bounds.DescriptorBytes, "max-descriptor-bytes", 0, "bytes of keys and values one descriptor may have; more is INVALID_ARGUMENT (0: 4096)")
	e.bytes(&cfg.Bounds.RequestBytes, "max-request-bytes", 0, "bytes of domain, keys and values one request may have (0: 65536)")
	e.bytes(&cfg.Bounds.OverLimitCacheBytes, "over-limit-cache-bytes", 0, "memory of the over-limit cache, which answers refusals without Redis (0: 16777216)")
	e.string(&cfg.AdminAddr, "admin-addr", "127.0.0.1:8082", "admin API and web console listen address, loopback by default; off: no admin port")
	e.string(&cfg.AdminTokenFile, "admin-token-file", "", "file of admin tokens, one name:token per line: every admin call then needs one")
	e.string(&cfg.AdminReadTokenFile, "admin-read-token-file", "", "file of read-only admin tokens, name:token per line")
	var logFormat, logLevel, leases, counterLayout string
	e.string(&logFormat, "log-format", "text", "log format: text or json")
	e.string(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	xdsFlags := addXDSFlags(e) // config over xDS: cmd/sluice/xds.go
	// quota leases (docs/leases.md)
	e.string(&leases, "leases", "auto", "quota leases: auto decides hot request limits from leases, exactly, where a replica's demand makes it pay; off sends every decision to Redis")
	e.string(&counterLayout, "counter-layout", "packed", "how counters are stored in Redis: packed (one string each) or hash, the layout of builds before packed counters, while one still runs beside this one")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	layout, layoutErr := lua.ParseLayout(counterLayout)
	if layoutErr != nil {
		fmt.Fprintf(stderr, "serve: --counter-layout: %v\n", layoutErr)
		return errUsage
	}
	cfg.CounterLayout = layout
	switch leases {
	case "auto":
		cfg.Leases = config.LeaseAuto
	case "off":
		cfg.Leases = config.LeaseOff
	default:
		fmt.Fprintf(stderr, "serve: --leases %q: want auto or off\n", leases)
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	dropGiven(upstreamErrs, fs)
	upstream.flagsGiven(fs)
	if envErr := errors.Join(e.err, finishFlags(), xdsFlags.check(), allErrors(upstreamErrs)); envErr != nil {
		fmt.Fprintf(stderr, "serve: %v\n", envErr)
		return errUsage
	}
	if cfg.ConfigPath == "" && !xdsFlags.enabled() {
		fmt.Fprintln(stderr, "serve: --config (or SLUICE_CONFIG, or envoyproxy/ratelimit's RUNTIME_ROOT) is required, unless --config-type grpc-xds-sotw")
		return errUsage
	}
	if cfg.AdminAddr == "off" {
		cfg.AdminAddr = ""
	}
	var err error
	if cfg.AuthToken, err = readToken("--auth-token-file", tokenFile, getenv("SLUICE_AUTH_TOKEN")); err != nil {
		return err
	}
	if cfg.DecideToken, err = readToken("--decide-token-file", decideTokenFile, getenv("SLUICE_DECIDE_TOKEN")); err != nil {
		return err
	}
	logger, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return errUsage
	}
	cfg.Logger = logger
	upstream.log(logger)
	if err := xdsFlags.source(&cfg, logger); err != nil {
		return err
	}
	tp, shutdownTracing, err := telemetry.TracerProviderFromEnv(ctx, getenv)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if tp != nil {
		cfg.TracerProvider = tp
		logger.Info("exporting traces over OTLP/gRPC")
	}
	srv, err := server.New(cfg)
	if err == nil {
		err = srv.Run(ctx)
	}
	flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if terr := shutdownTracing(flushCtx); terr != nil {
		logger.Warn("flushing traces", "err", terr)
	}
	return err
}

// readToken is the token in file, or token (from the environment) when no
// file is named; a named file that is empty or unreadable is an error.
func readToken(flagName, file, token string) (string, error) {
	if file == "" {
		return token, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	if token = strings.TrimSpace(string(raw)); token == "" {
		return "", fmt.Errorf("%s %s: the file is empty", flagName, file)
	}
	return token, nil
}

// newLogger builds the service's logger; the server adds the trace id to
// records logged during a traced call.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func checkConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	getenv, _, upstreamErrs := upstreamEnv(getenv)
	e := &envFlags{fs: fs, getenv: getenv}
	var merge bool
	e.bool(&merge, "merge-domain-config", false, mergeDomainsUsage)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprint(stderr, "usage: sluice check-config [--merge-domain-config] PATH\n")
		return errUsage
	}
	dropGiven(upstreamErrs, fs)
	if envErr := errors.Join(e.err, upstreamErrs["SLUICE_MERGE_DOMAIN_CONFIG"]); envErr != nil {
		fmt.Fprintf(stderr, "check-config: %v\n", envErr)
		return errUsage
	}
	args = fs.Args()
	set, err := config.LoadWith(args[0], config.LoadOptions{MergeDomains: merge})
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

const mergeDomainsUsage = "let several files define one domain, merging their descriptors, as envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG=true does"
