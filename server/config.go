package server

import (
	"errors"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/grpcapi"
	"github.com/sluice-rl/sluice/server/limiter"
	"github.com/sluice-rl/sluice/server/overlay"
	"github.com/sluice-rl/sluice/server/tlsconf"
)

// Config is everything the service needs to run. Only cmd/ reads flags and
// environment variables; it fills this struct.
type Config struct {
	// ConfigPath is the limits config: a YAML file or a directory of them.
	// (Required, unless ConfigSource is set)
	ConfigPath string
	// ConfigSource, when set, supplies the limits config instead of
	// ConfigPath's files: an xDS management server (server/xds). The server
	// starts with no domains and is not ready until the first config
	// arrives. (Optional; give it or ConfigPath, not both)
	ConfigSource ConfigSource
	// RedisURL names the counter store, redis:// or rediss://. (Optional,
	// default: the embedded in-process store)
	RedisURL string
	// GRPCAddr is where gRPC is served. (Optional, default ":8081")
	GRPCAddr string
	// HTTPAddr is where HTTP/JSON and health are served. (Optional, default
	// ":8080")
	HTTPAddr string
	// HealthAddr, when set, serves GET /healthz, /readyz and /metrics on a
	// port of their own, always plain HTTP and without the JSON API: for
	// Kubernetes probes and Prometheus when the service ports use mutual TLS,
	// which the kubelet cannot pass. (Optional, default: none)
	HealthAddr string
	// MergeDomainConfig lets several files of ConfigPath define one domain,
	// as envoyproxy/ratelimit's MERGE_DOMAIN_CONFIG=true does
	// (config.LoadOptions.MergeDomains). (Optional, default false: a domain
	// defined twice is an error)
	MergeDomainConfig bool
	// QuotaMode makes every descriptor quota-mode, as envoyproxy/ratelimit's
	// QUOTA_MODE=true: a call is refused only when all of its descriptors are
	// over (or an enforced token limit refuses). (Optional, default false)
	QuotaMode bool
	// EnvoyResponseHeaders makes Envoy's API answer with the RateLimit-Limit,
	// -Remaining and -Reset headers, as envoyproxy/ratelimit's
	// LIMIT_RESPONSE_HEADERS_ENABLED=true; named by EnvoyHeaderNames.
	// sluice.v1 always sends them. (Optional, default false)
	EnvoyResponseHeaders bool
	// EnvoyHeaderNames renames those headers (upstream's LIMIT_LIMIT_HEADER,
	// LIMIT_REMAINING_HEADER, LIMIT_RESET_HEADER). (Optional, default
	// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset)
	EnvoyHeaderNames grpcapi.HeaderNames
	// EnvoyDynamicMetadata makes Envoy's API fill the response's
	// dynamic_metadata (the request, and the config metadata of the
	// descriptors that passed), as envoyproxy/ratelimit's
	// RESPONSE_DYNAMIC_METADATA=true. (Optional, default false)
	EnvoyDynamicMetadata bool
	// ReloadInterval is how often the config is checked for changes.
	// (Optional, default 1s)
	ReloadInterval time.Duration
	// DrainTimeout bounds the wait for in-flight calls at shutdown.
	// (Optional, default 10s)
	DrainTimeout time.Duration
	// ReadinessInterval is how often Redis is probed for readiness.
	// (Optional, default 1s)
	ReadinessInterval time.Duration
	// KeyPrefix starts every Redis key. (Optional, default "sluice:")
	KeyPrefix string
	// RedisTLS is the client TLS of a rediss:// RedisURL: the CAs to trust,
	// the client certificate for a Redis that requires one (mutual TLS,
	// reread when the files change) and whether to skip the host name check.
	// Setting any of it with a URL without TLS is an error. (Optional)
	RedisTLS tlsconf.ClientFiles
	// RedisPoolSize is the connections per Redis node. (Optional, default
	// go-redis's: 10 per CPU)
	RedisPoolSize int
	// ShadowMode puts every limit in shadow mode, as envoyproxy/ratelimit's
	// SHADOW_MODE=true: no call is refused, and limits count what they would
	// have admitted. (Optional, default false)
	ShadowMode bool
	// Leases says whether replicas decide request limits from quota leases
	// where their demand makes it pay (docs/leases.md): config.LeaseAuto,
	// the zero value, or config.LeaseOff for every decision in Redis. A
	// limit's own `lease: off` wins. (Optional, default auto)
	Leases config.LeaseMode
	// CounterLayout is how the scripts write counters in Redis: lua.Packed,
	// the zero value, or lua.Hash, the layout of builds before packed
	// counters, while such a build still runs beside this one (both layouts
	// are read; docs/design-notes.md, "Counter layout"). The embedded store
	// always gets hashes: its Lua has no cmsgpack. (Optional, default packed)
	CounterLayout lua.Layout
	// ReservationGrace is how long a token reservation record outlives the
	// longest window it reserved on, for slow calls to report into.
	// (Optional, default 10m)
	ReservationGrace time.Duration
	// TLSCertFile and TLSKeyFile, when set, serve both ports over TLS with
	// this certificate, reread from disk when the files change. (Optional)
	TLSCertFile, TLSKeyFile string
	// TLSClientCAFile, when set, turns on mutual TLS: clients must present
	// a certificate signed by one of these CAs. (Optional; needs TLSCertFile)
	TLSClientCAFile string
	// AuthToken, when set, is the full bearer token: every data-plane call,
	// gRPC and HTTP (all but health and metrics), needs it, DecideToken or a
	// client certificate verified by TLSClientCAFile, so that nobody who
	// merely reaches a port can spend, refund or read quota. (Optional)
	AuthToken string
	// AdminAddr, when set, serves the admin API (sluice.v1.AdminService as
	// JSON: runtime limits, the audit trail, the config export) and the web
	// console on a port of its own — never on the data-plane ports — over
	// TLS when the other ports use it. Anyone who reaches it can change
	// limits unless AdminTokenFile is set: keep it on loopback or behind a
	// network policy. (Optional, default: none; sluice serve defaults it to
	// 127.0.0.1:8082)
	AdminAddr string
	// AdminTokenFile, when set, holds the admin tokens, one "name:token" per
	// line: every admin call then needs "Authorization: Bearer <token>", and
	// the audit trail records the name. AdminReadTokenFile holds tokens that
	// may only read (it needs AdminTokenFile). Both are reread when they
	// change. (Optional)
	AdminTokenFile, AdminReadTokenFile string
	// RuntimePollInterval is how often each replica checks Redis for changed
	// runtime limits in case a change message was lost; messages apply
	// changes at once. (Optional, default 500ms)
	RuntimePollInterval time.Duration
	// DecideToken, when set, is a second bearer token that may only decide
	// and read: ShouldRateLimit within the limits and GetUsage, never a
	// refund, a charge past a limit or a limit override (see
	// grpcapi.DecideAccess). (Optional; needs AuthToken)
	DecideToken string
	// Bounds limit the bytes of a descriptor and of a request and the memory
	// of the over-limit cache. (Optional, zero fields take limiter's
	// defaults: 4 KiB, 64 KiB, 16 MiB)
	Bounds limiter.Bounds
	// Logger receives the service's logs; records logged during a traced
	// call carry its trace_id and span_id. (Optional, default slog.Default())
	Logger *slog.Logger
	// TracerProvider receives a span for every call and every Redis script
	// call in it (telemetry.TracerProviderFromEnv builds one from OTEL_*).
	// The caller shuts it down. (Optional, default: no tracing)
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.GRPCAddr == "" {
		c.GRPCAddr = ":8081"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.ReadinessInterval == 0 {
		c.ReadinessInterval = time.Second
	}
	if c.ReservationGrace == 0 {
		c.ReservationGrace = limiter.DefaultReservationGrace
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "sluice:"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RuntimePollInterval == 0 {
		c.RuntimePollInterval = overlay.DefaultPollInterval
	}
}

// auth is the data plane's authentication policy.
func (c *Config) auth() grpcapi.Auth {
	return grpcapi.Auth{Token: c.AuthToken, DecideToken: c.DecideToken}
}

// Validate reports what is missing or out of range.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.ConfigPath == "" && c.ConfigSource == nil:
		errs = append(errs, errors.New("config path: required"))
	case c.ConfigPath != "" && c.ConfigSource != nil:
		errs = append(errs, errors.New("config path: not with a config source (give files or a source, not both)"))
	}
	if c.ReloadInterval < 0 {
		errs = append(errs, errors.New("reload interval: must not be negative"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("drain timeout: must not be negative"))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls: give both a certificate and a key file"))
	}
	if c.TLSClientCAFile != "" && c.TLSCertFile == "" {
		errs = append(errs, errors.New("tls client ca: mutual TLS needs a server certificate and key too"))
	}
	if c.DecideToken != "" && c.AuthToken == "" {
		errs = append(errs, errors.New("decide token: needs the full auth token too (someone must be able to report usage)"))
	}
	if c.DecideToken != "" && c.DecideToken == c.AuthToken {
		errs = append(errs, errors.New("decide token: must differ from the full auth token"))
	}
	if c.ReservationGrace < 0 {
		errs = append(errs, errors.New("reservation grace: must not be negative"))
	}
	if c.AdminReadTokenFile != "" && c.AdminTokenFile == "" {
		errs = append(errs, errors.New("admin read token file: needs an admin token file too"))
	}
	if (c.AdminTokenFile != "" || c.AdminReadTokenFile != "") && c.AdminAddr == "" {
		errs = append(errs, errors.New("admin token file: there is no admin port (admin addr)"))
	}
	if c.RuntimePollInterval < 0 {
		errs = append(errs, errors.New("runtime poll interval: must not be negative"))
	}
	if err := c.Bounds.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RedisPoolSize < 0 {
		errs = append(errs, errors.New("redis pool size: must not be negative"))
	}
	if (c.RedisTLS.Cert == "") != (c.RedisTLS.Key == "") {
		errs = append(errs, errors.New("redis tls: give both the client certificate and its key"))
	}
	if c.ReadinessInterval < 0 {
		errs = append(errs, errors.New("readiness interval: must not be negative"))
	}
	return errors.Join(errs...)
}
