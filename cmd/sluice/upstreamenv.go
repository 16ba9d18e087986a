package main

// envoyproxy/ratelimit's settings. A Deployment moved over from upstream keeps its
// environment: every variable of upstream's src/settings/settings.go (as of its
// master of July 2026) is in one of the two tables below. upstreamMappings give a
// SLUICE_* variable — and so the serve flag it is the default of — its value from
// upstream's variables when the SLUICE_* variable itself is not set. The precedence
// is: flag > SLUICE_* > upstream's variable > Sluice's default. upstreamOthers are
// the variables with no flag: what Sluice does instead, and which values ask for
// something Sluice does not do; those are named in one start-up warning. The table in
// docs/deployment.md documents both (TestUpstreamTableIsDocumented keeps it whole).

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// upstreamMapping builds one SLUICE_* variable from upstream's variables.
type upstreamMapping struct {
	sluice string   // the SLUICE_* (or OTEL_*) variable it stands in for
	from   []string // upstream's variables it reads; it applies when one of them is set
	value  convert  // builds the SLUICE_* variable from them
}

// convert builds a SLUICE_* variable's value from upstream's variables, read
// with get; "" means: leave it unset. An error names upstream's variable and
// what it wants.
type convert func(get func(string) string) (string, error)

// upstreamMappings are upstream's variables that Sluice honours, by the
// SLUICE_* variable they feed.
var upstreamMappings = []upstreamMapping{
	{"SLUICE_CONFIG", []string{"RUNTIME_ROOT", "RUNTIME_SUBDIRECTORY", "RUNTIME_APPDIRECTORY"}, runtimeConfigDir},
	{"SLUICE_MERGE_DOMAIN_CONFIG", []string{"MERGE_DOMAIN_CONFIG"}, boolean("MERGE_DOMAIN_CONFIG")},
	{"SLUICE_REDIS", []string{"REDIS_URL", "REDIS_TYPE", "REDIS_SOCKET_TYPE", "REDIS_AUTH", "REDIS_SENTINEL_AUTH", "REDIS_TLS"}, redisURL},
	{"SLUICE_REDIS_TLS_CA", []string{"REDIS_TLS_CACERT"}, onlyWith("REDIS_TLS", verbatim("REDIS_TLS_CACERT"))},
	{"SLUICE_REDIS_TLS_CERT", []string{"REDIS_TLS_CLIENT_CERT"}, onlyWith("REDIS_TLS", verbatim("REDIS_TLS_CLIENT_CERT"))},
	{"SLUICE_REDIS_TLS_KEY", []string{"REDIS_TLS_CLIENT_KEY"}, onlyWith("REDIS_TLS", verbatim("REDIS_TLS_CLIENT_KEY"))},
	{"SLUICE_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION", []string{"REDIS_TLS_SKIP_HOSTNAME_VERIFICATION"}, onlyWith("REDIS_TLS", boolean("REDIS_TLS_SKIP_HOSTNAME_VERIFICATION"))},
	{"SLUICE_REDIS_POOL_SIZE", []string{"REDIS_POOL_SIZE"}, count("REDIS_POOL_SIZE", 1)},
	{"SLUICE_KEY_PREFIX", []string{"CACHE_KEY_PREFIX"}, verbatim("CACHE_KEY_PREFIX")},
	{"SLUICE_OVER_LIMIT_CACHE_BYTES", []string{"LOCAL_CACHE_SIZE_IN_BYTES"}, localCacheSize},
	{"SLUICE_HTTP_ADDR", []string{"HOST", "PORT"}, hostPort("HOST", "PORT", "8080")},
	{"SLUICE_GRPC_ADDR", []string{"GRPC_HOST", "GRPC_PORT"}, hostPort("GRPC_HOST", "GRPC_PORT", "8081")},
	{"SLUICE_HEALTH_ADDR", []string{"DEBUG_HOST", "DEBUG_PORT"}, hostPort("DEBUG_HOST", "DEBUG_PORT", "6070")},
	{"SLUICE_TLS_CERT", []string{"GRPC_SERVER_USE_TLS", "GRPC_SERVER_TLS_CERT"}, onlyWith("GRPC_SERVER_USE_TLS", required("GRPC_SERVER_TLS_CERT", "GRPC_SERVER_USE_TLS"))},
	{"SLUICE_TLS_KEY", []string{"GRPC_SERVER_USE_TLS", "GRPC_SERVER_TLS_KEY"}, onlyWith("GRPC_SERVER_USE_TLS", required("GRPC_SERVER_TLS_KEY", "GRPC_SERVER_USE_TLS"))},
	{"SLUICE_TLS_CLIENT_CA", []string{"GRPC_CLIENT_TLS_CACERT"}, onlyWith("GRPC_SERVER_USE_TLS", verbatim("GRPC_CLIENT_TLS_CACERT"))},
	{"SLUICE_LOG_LEVEL", []string{"LOG_LEVEL"}, logLevel},
	{"SLUICE_LOG_FORMAT", []string{"LOG_FORMAT"}, logFormat},
	{"SLUICE_SHADOW_MODE", []string{"SHADOW_MODE", "GLOBAL_SHADOW_MODE"}, shadowMode},
	{"SLUICE_QUOTA_MODE", []string{"QUOTA_MODE"}, boolean("QUOTA_MODE")},
	{"SLUICE_ENVOY_RESPONSE_HEADERS", []string{"LIMIT_RESPONSE_HEADERS_ENABLED"}, boolean("LIMIT_RESPONSE_HEADERS_ENABLED")},
	{"SLUICE_ENVOY_HEADER_NAMES", headerVars, headerNames},
	{"SLUICE_ENVOY_DYNAMIC_METADATA", []string{"RESPONSE_DYNAMIC_METADATA"}, boolean("RESPONSE_DYNAMIC_METADATA")},
	// Config over xDS (cmd/sluice/xds.go, docs/xds.md)
	{"SLUICE_CONFIG_TYPE", []string{"CONFIG_TYPE"}, verbatim("CONFIG_TYPE")},
	{"SLUICE_XDS_SERVER", []string{"CONFIG_GRPC_XDS_SERVER_URL"}, verbatim("CONFIG_GRPC_XDS_SERVER_URL")},
	{"SLUICE_XDS_NODE_ID", []string{"CONFIG_GRPC_XDS_NODE_ID"}, verbatim("CONFIG_GRPC_XDS_NODE_ID")},
	{"SLUICE_XDS_NODE_METADATA", []string{"CONFIG_GRPC_XDS_NODE_METADATA"}, verbatim("CONFIG_GRPC_XDS_NODE_METADATA")},
	{"SLUICE_XDS_HEADERS", []string{"CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS"}, verbatim("CONFIG_GRPC_XDS_CLIENT_ADDITIONAL_HEADERS")},
	{"SLUICE_XDS_TLS", []string{"CONFIG_GRPC_XDS_SERVER_USE_TLS"}, boolean("CONFIG_GRPC_XDS_SERVER_USE_TLS")},
	{"SLUICE_XDS_TLS_CA", []string{"CONFIG_GRPC_XDS_SERVER_TLS_CACERT"}, verbatim("CONFIG_GRPC_XDS_SERVER_TLS_CACERT")},
	{"SLUICE_XDS_TLS_CERT", []string{"CONFIG_GRPC_XDS_CLIENT_TLS_CERT"}, verbatim("CONFIG_GRPC_XDS_CLIENT_TLS_CERT")},
	{"SLUICE_XDS_TLS_KEY", []string{"CONFIG_GRPC_XDS_CLIENT_TLS_KEY"}, verbatim("CONFIG_GRPC_XDS_CLIENT_TLS_KEY")},
	{"SLUICE_XDS_TLS_SERVER_NAME", []string{"CONFIG_GRPC_XDS_SERVER_TLS_SAN"}, verbatim("CONFIG_GRPC_XDS_SERVER_TLS_SAN")},
	{"SLUICE_XDS_BACKOFF_INITIAL", []string{"XDS_CLIENT_BACKOFF_INITIAL_INTERVAL"}, duration("XDS_CLIENT_BACKOFF_INITIAL_INTERVAL")},
	{"SLUICE_XDS_BACKOFF_MAX", []string{"XDS_CLIENT_BACKOFF_MAX_INTERVAL"}, duration("XDS_CLIENT_BACKOFF_MAX_INTERVAL")},
	{"SLUICE_XDS_BACKOFF_RANDOM_FACTOR", []string{"XDS_CLIENT_BACKOFF_RANDOM_FACTOR"}, number("XDS_CLIENT_BACKOFF_RANDOM_FACTOR")},
	{"SLUICE_XDS_BACKOFF_JITTER", []string{"XDS_CLIENT_BACKOFF_JITTER"}, boolean("XDS_CLIENT_BACKOFF_JITTER")},
	{"SLUICE_XDS_MAX_MSG_BYTES", []string{"XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES"}, count("XDS_CLIENT_MAX_MSG_SIZE_IN_BYTES", 0)},
	// Tracing: Sluice reads the standard OTEL_* variables; upstream's name them.
	{"OTEL_SERVICE_NAME", []string{"TRACING_SERVICE_NAME"}, onlyWith("TRACING_ENABLED", verbatim("TRACING_SERVICE_NAME"))},
	{"OTEL_RESOURCE_ATTRIBUTES", []string{"TRACING_SERVICE_NAMESPACE", "TRACING_SERVICE_INSTANCE_ID"}, onlyWith("TRACING_ENABLED", tracingResource)},
	{"OTEL_TRACES_SAMPLER", []string{"TRACING_SAMPLING_RATE"}, onlyWith("TRACING_ENABLED", constant("parentbased_traceidratio"))},
	{"OTEL_TRACES_SAMPLER_ARG", []string{"TRACING_SAMPLING_RATE"}, onlyWith("TRACING_ENABLED", samplingRate)},
}

// upstreamOther is one of upstream's variables without a flag of its own.
type upstreamOther struct {
	name string
	// instead says what Sluice does; for the docs, and the warning.
	instead string
	// unsupported reports whether the value asks for something Sluice does
	// not do (a value the variable is set to, never ""); nil: never.
	unsupported func(v string, get func(string) string) bool
}

// Reasons that several upstreamOthers share.
const (
	noMemcache         = "memcache is not supported"
	perSecondOnly      = "only with REDIS_PERSECOND=true (not supported)"
	startsWithoutRedis = "no effect: Sluice starts without Redis, unready, and turns ready when Redis answers"
	waitsForPool       = "no effect: a call waits for a pooled connection within its deadline"
	noStatsd           = "not supported (statsd)"
	noConnectionAge    = "not supported: gRPC connections are not aged out"
)

// upstreamOthers are upstream's other variables.
var upstreamOthers = []upstreamOther{
	{"STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "always true: a refused call charges no limit (all or nothing); it cannot be turned off", isFalse},
	{"RUNTIME_WATCH_ROOT", "no effect: the config directory is reread every second, so a swapped RUNTIME_ROOT symlink and an edit inside it are both seen", nil},
	{"RUNTIME_IGNOREDOTFILES", "always true: files whose names start with '.' are skipped", nil},
	{"FORCE_START_WITHOUT_INITIAL_CONFIG", "either way: with CONFIG_TYPE=GRPC_XDS_SOTW Sluice listens at once and stays unready until the first config arrives (docs/xds.md)", nil},
	{"CONFIG_GRPC_XDS_SERVER_CONNECT_RETRY_INTERVAL", "no effect: reconnects to the xDS server follow XDS_CLIENT_BACKOFF_*", nil},
	{"BACKEND_TYPE", "redis only; memcache is not supported", notIn("redis")},
	{"MEMCACHE_HOST_PORT", noMemcache, always},
	{"MEMCACHE_MAX_IDLE_CONNS", noMemcache, always},
	{"MEMCACHE_SRV", noMemcache, always},
	{"MEMCACHE_SRV_REFRESH", noMemcache, always},
	{"MEMCACHE_TLS", noMemcache, isTrue},
	{"MEMCACHE_TLS_CLIENT_CERT", noMemcache, always},
	{"MEMCACHE_TLS_CLIENT_KEY", noMemcache, always},
	{"MEMCACHE_TLS_CACERT", noMemcache, always},
	{"MEMCACHE_TLS_SKIP_HOSTNAME_VERIFICATION", noMemcache, isTrue},
	{"REDIS_PERSECOND", "one Redis holds every limit; a second one for per-second limits is not supported", isTrue},
	{"REDIS_PERSECOND_SOCKET_TYPE", perSecondOnly, nil},
	{"REDIS_PERSECOND_TYPE", perSecondOnly, nil},
	{"REDIS_PERSECOND_URL", perSecondOnly, nil},
	{"REDIS_PERSECOND_POOL_SIZE", perSecondOnly, nil},
	{"REDIS_PERSECOND_AUTH", perSecondOnly, nil},
	{"REDIS_PERSECOND_TLS", perSecondOnly, nil},
	{"REDIS_PERSECOND_SENTINEL_AUTH", perSecondOnly, nil},
	{"REDIS_PERSECOND_PIPELINE_WINDOW", perSecondOnly, nil},
	{"REDIS_PERSECOND_PIPELINE_LIMIT", perSecondOnly, nil},
	{"REDIS_PERSECOND_CLUSTER_PIPELINE_PARALLELISM", perSecondOnly, nil},
	{"REDIS_PERSECOND_TIMEOUT", perSecondOnly, nil},
	{"REDIS_PERSECOND_POOL_ON_EMPTY_BEHAVIOR", perSecondOnly, nil},
	{"REDIS_PERSECOND_POOL_ON_EMPTY_WAIT_DURATION", perSecondOnly, nil},
	{"REDIS_PIPELINE_WINDOW", "no effect: concurrent calls are always pipelined, each batch sent as soon as the previous one is written, without a time window", nil},
	{"REDIS_PIPELINE_LIMIT", "no effect: a pipelined batch holds at most 128 calls", nil},
	{"REDIS_CLUSTER_PIPELINE_PARALLELISM", "no effect: on a cluster each node's batch goes out in parallel", nil},
	{"REDIS_TIMEOUT", "no effect: each Redis call gets 90% of the caller's remaining deadline (1 s when it set none); dialling a node is bounded by 1 s", nil},
	{"REDIS_POOL_ON_EMPTY_BEHAVIOR", waitsForPool, nil},
	{"REDIS_POOL_ON_EMPTY_WAIT_DURATION", waitsForPool, nil},
	{"REDIS_STARTUP_INITIAL_INTERVAL", startsWithoutRedis, nil},
	{"REDIS_STARTUP_MAX_INTERVAL", startsWithoutRedis, nil},
	{"REDIS_STARTUP_MAX_ELAPSED_TIME", startsWithoutRedis, nil},
	{"REDIS_HEALTH_CHECK_ACTIVE_CONNECTION", "always true: readiness (/readyz, /healthcheck, gRPC health) fails while Redis does not answer", nil},
	{"HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED", "always true: Sluice does not start without a config that loads", nil},
	{"EXPIRATION_JITTER_MAX_SECONDS", "no effect: every key expires when its window has passed, exactly", nil},
	{"NEAR_LIMIT_RATIO", "no effect: it only feeds upstream's near_limit statsd counter", nil},
	{"GRPC_UDS", "not supported: gRPC listens on TCP (GRPC_HOST/GRPC_PORT)", always},
	{"GRPC_MAX_CONNECTION_AGE", noConnectionAge, always},
	{"GRPC_MAX_CONNECTION_AGE_GRACE", noConnectionAge, always},
	{"GRPC_CLIENT_TLS_SAN", "not supported: any client certificate signed by GRPC_CLIENT_TLS_CACERT is accepted", always},
	{"GRPC_SERVER_USE_TLS", "with GRPC_SERVER_TLS_CERT/_KEY: TLS on the gRPC port and, unlike upstream, on the HTTP port (PORT) too; plain-HTTP probes belong on DEBUG_PORT (/healthz, /readyz)", isTrue},
	{"USE_STATSD", "not supported: metrics are Prometheus's, on GET /metrics", isTrue},
	{"STATSD_HOST", noStatsd, statsdInUse},
	{"STATSD_PORT", noStatsd, statsdInUse},
	{"USE_DOG_STATSD", noStatsd, isTrue},
	{"USE_DOG_STATSD_MOGRIFIERS", noStatsd, always},
	{"EXTRA_TAGS", "not supported: metrics carry Sluice's own labels", always},
	{"STATS_FLUSH_INTERVAL", "no effect: Prometheus pulls the metrics", nil},
	{"DISABLE_STATS", "no effect: GET /metrics is always served", nil},
	{"USE_PROMETHEUS", "metrics are always on GET /metrics of the HTTP port and of DEBUG_PORT, under Sluice's names (server/telemetry/README.md); PROMETHEUS_ADDR is not used", isTrue},
	{"PROMETHEUS_ADDR", "not supported: metrics are on GET /metrics of the HTTP port and of DEBUG_PORT", prometheusInUse},
	{"PROMETHEUS_PATH", "not supported: metrics are on GET /metrics", prometheusInUse},
	{"PROMETHEUS_MAPPER_YAML", "not supported: metrics have Sluice's names", prometheusInUse},
	{"PROMETHEUS_RESPONSE_TIME_AS_MILLISECONDS", "not supported: durations are in seconds, as Prometheus's convention", isTrue},
	{"TRACING_ENABLED", "with OTEL_EXPORTER_OTLP_ENDPOINT, traces go out over OTLP/gRPC only (Sluice also traces when only the OTEL_* variables ask); needs TRACING_EXPORTER_PROTOCOL=grpc, upstream's default is http", tracingOverHTTP},
	{"TRACING_EXPORTER_PROTOCOL", "grpc only: Sluice exports OTLP over gRPC (see TRACING_ENABLED)", nil},
	{"PROTO", "tcp only (an old upstream setting)", notIn("tcp")},
}

// upstreamReport is what upstreamEnv did, for the start-up log.
type upstreamReport struct {
	applied     []string // "REDIS_URL → SLUICE_REDIS"
	overridden  []string // "REDIS_URL (SLUICE_REDIS is set)", "REDIS_URL (--redis is given)"
	noEffect    []string // set, and Sluice does what its row says (or, a mapping's, gives nothing)
	unsupported []string // "MEMCACHE_HOST_PORT (memcache is not supported)"
}

// upstreamEnv folds upstream's settings into getenv: the returned function
// answers a SLUICE_* (or OTEL_*) variable that is unset with the value
// upstream's variables give it. errs holds the errors of mappings that
// applied, by the variable they feed, each naming upstream's variable.
func upstreamEnv(getenv func(string) string) (get func(string) string, r upstreamReport, errs map[string]error) {
	folded := map[string]string{}
	errs = map[string]error{}
	for _, m := range upstreamMappings {
		var set []string
		for _, name := range m.from {
			if getenv(name) != "" {
				set = append(set, name)
			}
		}
		if len(set) == 0 {
			continue
		}
		if getenv(m.sluice) != "" {
			r.overridden = append(r.overridden, fmt.Sprintf("%s (%s is set)", strings.Join(set, "+"), m.sluice))
			continue
		}
		v, err := m.value(getenv)
		if err != nil {
			errs[m.sluice] = errors.Join(errs[m.sluice], err)
			continue
		}
		if v == "" { // switched off (onlyWith), or LOCAL_CACHE_SIZE_IN_BYTES=0: listed, not silent
			r.noEffect = append(r.noEffect, strings.Join(set, "+"))
			continue
		}
		folded[m.sluice] = v
		r.applied = append(r.applied, strings.Join(set, "+")+" → "+m.sluice)
	}
	for _, o := range upstreamOthers {
		v := getenv(o.name)
		switch {
		case v == "":
		case o.unsupported != nil && o.unsupported(v, getenv):
			r.unsupported = append(r.unsupported, fmt.Sprintf("%s=%s (%s)", o.name, v, o.instead))
		default:
			r.noEffect = append(r.noEffect, o.name)
		}
	}
	// Upstream reads its REDIS_TLS_* files only with REDIS_TLS=true, and so
	// do their mappings (onlyWith); one set without it is said to be ignored
	// (a REDIS_TLS that is not a boolean is their mappings' error).
	for _, m := range upstreamMappings {
		name := m.from[0]
		if strings.HasPrefix(name, "REDIS_TLS_") && getenv(name) != "" && reads(getenv("REDIS_TLS"), false) && getenv(m.sluice) == "" {
			r.unsupported = append(r.unsupported, name+" (ignored as upstream ignores it: REDIS_TLS is not true)")
		}
	}
	get = func(key string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return folded[key]
	}
	return get, r, errs
}

// log writes what the fold did: one info record of the variables applied,
// one warning naming every setting Sluice does not honour.
func (r upstreamReport) log(l *slog.Logger) {
	if len(r.applied) > 0 || len(r.overridden) > 0 || len(r.noEffect) > 0 {
		l.Info("envoyproxy/ratelimit settings read (docs/deployment.md)", "applied", r.applied, "overridden", r.overridden, "no_effect", r.noEffect)
	}
	if len(r.unsupported) > 0 {
		l.Warn("envoyproxy/ratelimit settings Sluice does not honour as upstream does: "+strings.Join(r.unsupported, "; ")+" (docs/deployment.md)", "settings", len(r.unsupported))
	}
}

// dropGiven removes the errors of the variables whose flag was given: the
// flag wins, so what upstream's variables would have said does not matter.
func dropGiven(errs map[string]error, fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { delete(errs, envKey(f.Name)) })
}

// flagsGiven moves what fed a variable whose flag was given from applied to
// overridden: the flag wins, so upstream's variables were not applied.
func (r *upstreamReport) flagsGiven(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		r.applied = slices.DeleteFunc(r.applied, func(a string) bool {
			from, fed := strings.CutSuffix(a, " → "+envKey(f.Name))
			if fed {
				r.overridden = append(r.overridden, fmt.Sprintf("%s (--%s is given)", from, f.Name))
			}
			return fed
		})
	})
}

// allErrors joins every error, sorted by the variable fed, so a message is
// stable; an error said for several variables (a bad switch they all depend
// on, such as TRACING_ENABLED) is said once.
func allErrors(errs map[string]error) error {
	var all []error
	said := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		if msg := errs[k].Error(); !said[msg] {
			said[msg] = true
			all = append(all, errs[k])
		}
	}
	return errors.Join(all...)
}

// Upstream's defaults where a mapping needs them.
const (
	upstreamRuntimeRoot  = "/srv/runtime_data/current"
	upstreamAppDirectory = "config"
	upstreamRedisURL     = "/var/run/nutcracker/ratelimit.sock"
)

// runtimeConfigDir is upstream's config directory,
// RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/RUNTIME_APPDIRECTORY, with upstream's
// defaults for the parts not set.
func runtimeConfigDir(get func(string) string) (string, error) {
	root := cmp.Or(get("RUNTIME_ROOT"), upstreamRuntimeRoot)
	app := cmp.Or(get("RUNTIME_APPDIRECTORY"), upstreamAppDirectory)
	return filepath.Join(root, get("RUNTIME_SUBDIRECTORY"), app), nil
}

// redisURL is Sluice's store URL for upstream's REDIS_* settings: REDIS_TYPE
// single (REDIS_URL "host:port", or a socket path with REDIS_SOCKET_TYPE
// unix), sentinel ("master,host:port,host:port...") or cluster
// ("host:port,host:port..."); REDIS_AUTH "password" or "user:password" for
// the data nodes, REDIS_SENTINEL_AUTH the same for the Sentinels; REDIS_TLS.
func redisURL(get func(string) string) (string, error) {
	raw := cmp.Or(get("REDIS_URL"), upstreamRedisURL)
	if strings.Contains(raw, "://") {
		return "", fmt.Errorf("REDIS_URL=%q: envoyproxy/ratelimit's form is host:port (a list for sentinel and cluster) or a socket path; a URL goes in SLUICE_REDIS or --redis", raw)
	}
	tlsOn, err := parseBool("REDIS_TLS", get("REDIS_TLS"))
	if err != nil {
		return "", err
	}
	socket := strings.ToLower(get("REDIS_SOCKET_TYPE"))
	if socket == "" { // upstream's default is unix; a host:port cannot be one
		socket = "tcp"
		if strings.HasPrefix(raw, "/") {
			socket = "unix"
		}
	}
	if socket != "tcp" && socket != "unix" {
		return "", fmt.Errorf("REDIS_SOCKET_TYPE=%q: want tcp or unix", get("REDIS_SOCKET_TYPE"))
	}
	auth := ""
	if a := get("REDIS_AUTH"); a != "" {
		user, pass := splitAuth(a)
		auth = url.UserPassword(user, pass).String() + "@"
	}
	typ := strings.ToLower(cmp.Or(get("REDIS_TYPE"), "single"))
	if socket == "unix" {
		if typ != "single" {
			return "", fmt.Errorf("REDIS_SOCKET_TYPE=unix: only with REDIS_TYPE=single, got %q", get("REDIS_TYPE"))
		}
		if tlsOn {
			return "", errors.New("REDIS_TLS=true: not over a Unix socket (REDIS_SOCKET_TYPE=unix)")
		}
		return "unix://" + auth + raw, nil
	}
	scheme := "redis"
	if tlsOn {
		scheme = "rediss"
	}
	parts := strings.Split(raw, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	switch typ {
	case "single":
		if len(parts) != 1 {
			return "", fmt.Errorf("REDIS_URL=%q: REDIS_TYPE=single takes one host:port (a list is for sentinel or cluster)", raw)
		}
		if err := checkHostPorts("REDIS_URL", parts); err != nil {
			return "", err
		}
		return scheme + "://" + auth + parts[0], nil
	case "sentinel":
		if len(parts) < 2 || parts[0] == "" {
			return "", fmt.Errorf("REDIS_URL=%q: REDIS_TYPE=sentinel wants the master name, then the Sentinels: mymaster,host:26379[,host:26379...]", raw)
		}
		if err := checkHostPorts("REDIS_URL", parts[1:]); err != nil {
			return "", err
		}
		u := scheme + "+sentinel://" + auth + strings.Join(parts[1:], ",") + "/" + url.PathEscape(parts[0])
		if sa := get("REDIS_SENTINEL_AUTH"); sa != "" {
			user, pass := splitAuth(sa)
			q := url.Values{}
			if user != "" {
				q.Set("sentinel_username", user)
			}
			q.Set("sentinel_password", pass)
			u += "?" + q.Encode()
		}
		return u, nil
	case "cluster":
		if err := checkHostPorts("REDIS_URL", parts); err != nil {
			return "", err
		}
		return scheme + "+cluster://" + auth + strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("REDIS_TYPE=%q: want single, sentinel or cluster", get("REDIS_TYPE"))
}

// splitAuth reads upstream's "password" or "user:password".
func splitAuth(a string) (user, pass string) {
	if u, p, ok := strings.Cut(a, ":"); ok {
		return u, p
	}
	return "", a
}

// checkHostPorts reports the first of hps that is not host:port, naming
// the variable they come from.
func checkHostPorts(name string, hps []string) error {
	for _, hp := range hps {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" {
			return fmt.Errorf("%s: %q is not host:port", name, hp)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s: %q: port %q is not a number from 1 to 65535", name, hp, port)
		}
	}
	return nil
}

// hostPort is a listen address from upstream's host and port variables; an
// unset host listens on every interface, an unset port is defaultPort
// (upstream's: 8080, 8081, 6070; the first two are Sluice's defaults too).
func hostPort(hostVar, portVar, defaultPort string) convert {
	return func(get func(string) string) (string, error) {
		host, port := get(hostVar), cmp.Or(get(portVar), defaultPort)
		n, err := strconv.Atoi(port)
		if err != nil || n < 0 || n > 65535 {
			hint := ""
			if strings.HasPrefix(port, "tcp://") {
				hint = fmt.Sprintf(" (Kubernetes sets %s for a Service named %q: set enableServiceLinks: false in the pod spec)", portVar, strings.ToLower(strings.TrimSuffix(portVar, "_PORT")))
			}
			return "", fmt.Errorf("%s=%q: want a port number%s", portVar, port, hint)
		}
		return net.JoinHostPort(host, port), nil
	}
}

// logLevel maps logrus's levels onto slog's.
func logLevel(get func(string) string) (string, error) {
	v := get("LOG_LEVEL")
	switch strings.ToLower(v) {
	case "trace", "debug":
		return "debug", nil
	case "info":
		return "info", nil
	case "warn", "warning":
		return "warn", nil
	case "error", "fatal", "panic":
		return "error", nil
	}
	return "", fmt.Errorf("LOG_LEVEL=%q: want trace, debug, info, warn, error, fatal or panic", v)
}

func logFormat(get func(string) string) (string, error) {
	v := get("LOG_FORMAT")
	if f := strings.ToLower(v); f == "text" || f == "json" {
		return f, nil
	}
	return "", fmt.Errorf("LOG_FORMAT=%q: want text or json", v)
}

// localCacheSize maps LOCAL_CACHE_SIZE_IN_BYTES: a size is the over-limit
// cache's; 0 (upstream: no cache) keeps Sluice's default, as Sluice's cache
// is always on.
func localCacheSize(get func(string) string) (string, error) {
	v, err := count("LOCAL_CACHE_SIZE_IN_BYTES", 0)(get)
	if v == "0" {
		return "", err
	}
	return v, err
}

// headerVars are upstream's header names, in --envoy-header-names' order.
var headerVars = []string{"LIMIT_LIMIT_HEADER", "LIMIT_REMAINING_HEADER", "LIMIT_RESET_HEADER"}

// headerNames joins upstream's three header names as --envoy-header-names
// takes them: limit,remaining,reset (an empty one keeps its default).
func headerNames(get func(string) string) (string, error) {
	names := make([]string, len(headerVars))
	for i, name := range headerVars {
		if names[i] = get(name); strings.Contains(names[i], ",") {
			return "", fmt.Errorf("%s=%q: a header name has no comma", name, names[i])
		}
	}
	return strings.Join(names, ","), nil
}

// shadowMode reads SHADOW_MODE, upstream's variable (of its GlobalShadowMode
// setting), else GLOBAL_SHADOW_MODE, the name some write for it.
func shadowMode(get func(string) string) (string, error) {
	if get("SHADOW_MODE") != "" {
		return boolean("SHADOW_MODE")(get)
	}
	return boolean("GLOBAL_SHADOW_MODE")(get)
}

// tracingResource is OTEL_RESOURCE_ATTRIBUTES from upstream's service
// namespace and instance id.
func tracingResource(get func(string) string) (string, error) {
	var attrs []string
	if ns := get("TRACING_SERVICE_NAMESPACE"); ns != "" {
		attrs = append(attrs, "service.namespace="+url.QueryEscape(ns))
	}
	if id := get("TRACING_SERVICE_INSTANCE_ID"); id != "" {
		attrs = append(attrs, "service.instance.id="+url.QueryEscape(id))
	}
	return strings.Join(attrs, ","), nil
}

func samplingRate(get func(string) string) (string, error) {
	v := get("TRACING_SAMPLING_RATE")
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || f > 1 {
		return "", fmt.Errorf("TRACING_SAMPLING_RATE=%q: want a number from 0 to 1", v)
	}
	return v, nil
}

// onlyWith applies f only when the boolean variable on is true: upstream
// reads its REDIS_TLS_* files only with REDIS_TLS=true (upstreamEnv warns of
// them otherwise), its TRACING_* settings only with TRACING_ENABLED=true, its
// GRPC_SERVER_TLS_* and GRPC_CLIENT_TLS_CACERT only with
// GRPC_SERVER_USE_TLS=true.
func onlyWith(on string, f convert) convert {
	return func(get func(string) string) (string, error) {
		if on, err := parseBool(on, get(on)); err != nil || !on {
			return "", err
		}
		return f(get)
	}
}

func boolean(name string) convert {
	return func(get func(string) string) (string, error) {
		b, err := parseBool(name, get(name))
		return strconv.FormatBool(b), err
	}
}

func duration(name string) convert {
	return func(get func(string) string) (string, error) {
		v := get(name)
		if _, err := time.ParseDuration(v); err != nil {
			return "", fmt.Errorf("%s=%q: want a duration like 10s", name, v)
		}
		return v, nil
	}
}

func number(name string) convert {
	return func(get func(string) string) (string, error) {
		v := get(name)
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", fmt.Errorf("%s=%q: want a number", name, v)
		}
		return v, nil
	}
}

func verbatim(name string) convert {
	return func(get func(string) string) (string, error) { return get(name), nil }
}

// constant is v whatever the variables of its row say (it applies only when
// one is set).
func constant(v string) convert {
	return func(func(string) string) (string, error) { return v, nil }
}

// required is name as is; unset is an error, as on=true needs it.
func required(name, on string) convert {
	return func(get func(string) string) (string, error) {
		if v := get(name); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%s=true needs %s", on, name)
	}
}

// count reads a whole number no less than least.
func count(name string, least int) convert {
	return func(get func(string) string) (string, error) {
		v := get(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < least {
			return "", fmt.Errorf("%s=%q: want a whole number of at least %d", name, v, least)
		}
		return strconv.Itoa(n), nil
	}
}

// parseBool reads a boolean as upstream (strconv.ParseBool); "" is false.
func parseBool(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// Predicates of upstreamOther.unsupported. A switch is read as upstream
// reads it (parseBool); one that is not a boolean, which upstream would not
// start with, is warned of rather than taken for false.
func always(string, func(string) string) bool      { return true }
func isTrue(v string, _ func(string) string) bool  { return !reads(v, false) }
func isFalse(v string, _ func(string) string) bool { return !reads(v, true) }
func notIn(ok ...string) func(string, func(string) string) bool {
	return func(v string, _ func(string) string) bool {
		for _, o := range ok {
			if strings.EqualFold(v, o) {
				return false
			}
		}
		return true
	}
}
func statsdInUse(_ string, get func(string) string) bool {
	v := get("USE_STATSD")
	return v == "" || isTrue(v, get) // upstream's default is true
}
func tracingOverHTTP(v string, get func(string) string) bool {
	return isTrue(v, get) && !strings.EqualFold(get("TRACING_EXPORTER_PROTOCOL"), "grpc")
}
func prometheusInUse(_ string, get func(string) string) bool {
	return isTrue(get("USE_PROMETHEUS"), get)
}

// reads reports whether the switch v is want ("" is false).
func reads(v string, want bool) bool {
	b, err := parseBool("", v)
	return err == nil && b == want
}
