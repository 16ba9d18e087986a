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
//	             [--leases auto|off]
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice-rl/sluice/internal/gctune"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
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
               [--leases auto|off]
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
	var envErr error
	boolFlag := func(p *bool, name, usage string, keys ...string) {
		v, err := envBool(getenv, keys...)
		envErr = errors.Join(envErr, err)
		fs.BoolVar(p, name, v, usage)
	}
	fs.StringVar(&cfg.ConfigPath, "config", getenv("SLUICE_CONFIG"), "limits config: a YAML file or a directory of them (env SLUICE_CONFIG)")
	boolFlag(&cfg.MergeDomainConfig, "merge-domain-config", mergeDomainsUsage, "SLUICE_MERGE_DOMAIN_CONFIG")
	// envoyproxy/ratelimit's answers on Envoy's API
	boolFlag(&cfg.QuotaMode, "quota-mode", "every descriptor in quota mode, as envoyproxy/ratelimit's QUOTA_MODE=true (env SLUICE_QUOTA_MODE)", "SLUICE_QUOTA_MODE")
	boolFlag(&cfg.EnvoyResponseHeaders, "envoy-response-headers", "Envoy's API sends RateLimit-Limit, -Remaining and -Reset (renamed by --envoy-header-names), as envoyproxy/ratelimit's LIMIT_RESPONSE_HEADERS_ENABLED=true (env SLUICE_ENVOY_RESPONSE_HEADERS)",
		"SLUICE_ENVOY_RESPONSE_HEADERS")
	boolFlag(&cfg.EnvoyDynamicMetadata, "envoy-dynamic-metadata", "Envoy's API fills the response's dynamic_metadata, as envoyproxy/ratelimit's RESPONSE_DYNAMIC_METADATA=true (env SLUICE_ENVOY_DYNAMIC_METADATA)",
		"SLUICE_ENVOY_DYNAMIC_METADATA")
	finishFlags := addServeFlags(fs, &cfg, getenv)
	fs.StringVar(&cfg.RedisURL, "redis", getenv("SLUICE_REDIS"), "redis://, rediss://, redis+sentinel://host:port[,...]/MASTER or redis+cluster://host:port[,...] (TLS: rediss+...); empty runs the embedded in-memory store (env SLUICE_REDIS)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", envOr(getenv, "SLUICE_GRPC_ADDR", ":8081"), "gRPC listen address (env SLUICE_GRPC_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr(getenv, "SLUICE_HTTP_ADDR", ":8080"), "HTTP listen address (env SLUICE_HTTP_ADDR)")
	fs.StringVar(&cfg.HealthAddr, "health-addr", getenv("SLUICE_HEALTH_ADDR"), "also serve /healthz, /readyz and /metrics here, always plain HTTP (for probes when the ports use mutual TLS); empty: off (env SLUICE_HEALTH_ADDR)")
	fs.StringVar(&cfg.TLSCertFile, "tls-cert", getenv("SLUICE_TLS_CERT"), "PEM certificate: serve both ports over TLS, reloaded when the file changes (env SLUICE_TLS_CERT)")
	fs.StringVar(&cfg.TLSKeyFile, "tls-key", getenv("SLUICE_TLS_KEY"), "PEM key of --tls-cert (env SLUICE_TLS_KEY)")
	fs.StringVar(&cfg.TLSClientCAFile, "tls-client-ca", getenv("SLUICE_TLS_CLIENT_CA"), "PEM CAs: require client certificates signed by them, mutual TLS (env SLUICE_TLS_CLIENT_CA)")
	tokenFile := fs.String("auth-token-file", getenv("SLUICE_AUTH_TOKEN_FILE"), "file holding the full bearer token, then required on every gRPC and JSON API call but health (env SLUICE_AUTH_TOKEN_FILE, or the token itself in SLUICE_AUTH_TOKEN)")
	decideTokenFile := fs.String("decide-token-file", getenv("SLUICE_DECIDE_TOKEN_FILE"), "file holding a decide-only bearer token: ShouldRateLimit and GetUsage, never refunds, reports, token hits or limit overrides; needs --auth-token-file (env SLUICE_DECIDE_TOKEN_FILE, or the token itself in SLUICE_DECIDE_TOKEN)")
	bounds, err := boundsFromEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return errUsage
	}
	fs.IntVar(&cfg.Bounds.DescriptorBytes, "max-descriptor-bytes", bounds.DescriptorBytes, "bytes of keys and values one descriptor may have; more is INVALID_ARGUMENT (0: 4096) (env SLUICE_MAX_DESCRIPTOR_BYTES)")
	fs.IntVar(&cfg.Bounds.RequestBytes, "max-request-bytes", bounds.RequestBytes, "bytes of domain, keys and values one request may have (0: 65536) (env SLUICE_MAX_REQUEST_BYTES)")
	fs.IntVar(&cfg.Bounds.OverLimitCacheBytes, "over-limit-cache-bytes", bounds.OverLimitCacheBytes, "memory of the over-limit cache, which answers refusals without Redis (0: 16777216) (env SLUICE_OVER_LIMIT_CACHE_BYTES)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", envOr(getenv, "SLUICE_ADMIN_ADDR", "127.0.0.1:8082"), "admin API and web console listen address, loopback by default; off: no admin port (env SLUICE_ADMIN_ADDR)")
	fs.StringVar(&cfg.AdminTokenFile, "admin-token-file", getenv("SLUICE_ADMIN_TOKEN_FILE"), "file of admin tokens, one name:token per line: every admin call then needs one (env SLUICE_ADMIN_TOKEN_FILE)")
	fs.StringVar(&cfg.AdminReadTokenFile, "admin-read-token-file", getenv("SLUICE_ADMIN_READ_TOKEN_FILE"), "file of read-only admin tokens, name:token per line (env SLUICE_ADMIN_READ_TOKEN_FILE)")
	logFormat := fs.String("log-format", envOr(getenv, "SLUICE_LOG_FORMAT", "text"), "log format: text or json (env SLUICE_LOG_FORMAT)")
	logLevel := fs.String("log-level", envOr(getenv, "SLUICE_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	xdsFlags := addXDSFlags(fs, getenv) // config over xDS: cmd/sluice/xds.go
	// quota leases (docs/leases.md)
	leases := fs.String("leases", envOr(getenv, "SLUICE_LEASES", "auto"), "quota leases: auto decides hot request limits from leases, exactly, where a replica's demand makes it pay; off sends every decision to Redis (env SLUICE_LEASES)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	switch *leases {
	case "auto":
		cfg.Leases = config.LeaseAuto
	case "off":
		cfg.Leases = config.LeaseOff
	default:
		fmt.Fprintf(stderr, "serve: --leases %q: want auto or off\n", *leases)
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	dropGiven(upstreamErrs, fs)
	if envErr = errors.Join(envErr, finishFlags(), xdsFlags.check(), allErrors(upstreamErrs)); envErr != nil {
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
	if cfg.AuthToken, err = readToken("--auth-token-file", *tokenFile, getenv("SLUICE_AUTH_TOKEN")); err != nil {
		return err
	}
	if cfg.DecideToken, err = readToken("--decide-token-file", *decideTokenFile, getenv("SLUICE_DECIDE_TOKEN")); err != nil {
		return err
	}
	logger, err := newLogger(stderr, *logFormat, *logLevel)
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
	mergeEnv, envErr := envBool(getenv, "SLUICE_MERGE_DOMAIN_CONFIG")
	envErr = errors.Join(envErr, upstreamErrs["SLUICE_MERGE_DOMAIN_CONFIG"])
	merge := fs.Bool("merge-domain-config", mergeEnv, mergeDomainsUsage)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprint(stderr, "usage: sluice check-config [--merge-domain-config] PATH\n")
		return errUsage
	}
	if envErr != nil {
		fmt.Fprintf(stderr, "check-config: %v\n", envErr)
		return errUsage
	}
	args = fs.Args()
	set, err := config.LoadWith(args[0], config.LoadOptions{MergeDomains: *merge})
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

const mergeDomainsUsage = "let several files define one domain, merging their descriptors, as envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG=true does (env SLUICE_MERGE_DOMAIN_CONFIG, or MERGE_DOMAIN_CONFIG)"

// envBool reads the first of keys that is set as a boolean (true, false, 1, 0, ...);
// false when none is set, an error naming the variable when it is not a boolean.
func envBool(getenv func(string) string, keys ...string) (bool, error) {
	for _, key := range keys {
		if v := getenv(key); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("%s=%q: want true or false", key, v)
			}
			return b, nil
		}
	}
	return false, nil
}

// boundsFromEnv reads the SLUICE_MAX_*_BYTES variables; unset is 0 (the
// default), anything but an integer an error naming the variable.
func boundsFromEnv(getenv func(string) string) (limiter.Bounds, error) {
	var b limiter.Bounds
	var errs []error
	for _, v := range []struct {
		key string
		dst *int
	}{
		{"SLUICE_MAX_DESCRIPTOR_BYTES", &b.DescriptorBytes},
		{"SLUICE_MAX_REQUEST_BYTES", &b.RequestBytes},
		{"SLUICE_OVER_LIMIT_CACHE_BYTES", &b.OverLimitCacheBytes},
	} {
		if raw := getenv(v.key); raw != "" {
			n, err := strconv.Atoi(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want a number of bytes", v.key, raw))
			}
			*v.dst = n
		}
	}
	return b, errors.Join(errs...)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
