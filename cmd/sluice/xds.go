package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/xds"
)

// xdsFlags are serve's flags for taking the config from an xDS management
// server (docs/xds.md). Each reads Sluice's variable, which
// envoyproxy/ratelimit's own (CONFIG_TYPE, CONFIG_GRPC_XDS_*, XDS_CLIENT_*)
// give defaults to (upstreamenv.go), so that its Deployment with
// CONFIG_TYPE=GRPC_XDS_SOTW works unchanged.
type xdsFlags struct {
	configType                     string
	server, nodeID                 string
	nodeMetadata, headers          string
	useTLS                         bool
	tlsCA, tlsCert, tlsKey, tlsSAN string
	backoffInitial, backoffMax     time.Duration
	backoffRandomFactor            float64
	backoffJitter                  bool
	maxMsgBytes                    int
	envErr                         error // a variable that does not parse
}

// Config types of --config-type.
const (
	configTypeFile = "file"
	configTypeXDS  = "grpc-xds-sotw"
)

// addXDSFlags defines the flags on fs, their defaults from getenv.
func addXDSFlags(fs *flag.FlagSet, getenv func(string) string) *xdsFlags {
	f := &xdsFlags{}
	str := func(p *string, name, def, usage string, keys ...string) {
		fs.StringVar(p, name, envFirst(getenv, def, keys...), usage+envNames(keys))
	}
	str(&f.configType, "config-type", configTypeFile, "where the limits config comes from: file (--config) or grpc-xds-sotw (an xDS management server, as envoyproxy/ratelimit's CONFIG_TYPE=GRPC_XDS_SOTW)",
		"SLUICE_CONFIG_TYPE")
	str(&f.server, "xds-server", "localhost:18000", "xDS management server, host:port", "SLUICE_XDS_SERVER")
	str(&f.nodeID, "xds-node-id", xds.DefaultNodeID, "node id sent to the xDS server, which keys its snapshots by it", "SLUICE_XDS_NODE_ID")
	str(&f.nodeMetadata, "xds-node-metadata", "", "node metadata sent to the xDS server, key=value,key=value", "SLUICE_XDS_NODE_METADATA")
	str(&f.headers, "xds-headers", "", "gRPC headers sent on the xDS stream, key:value,key:value", "SLUICE_XDS_HEADERS")
	str(&f.tlsCA, "xds-tls-ca", "", "PEM CAs that sign the xDS server's certificate (default: the system's)", "SLUICE_XDS_TLS_CA")
	str(&f.tlsCert, "xds-tls-cert", "", "PEM client certificate for mutual TLS to the xDS server", "SLUICE_XDS_TLS_CERT")
	str(&f.tlsKey, "xds-tls-key", "", "PEM key of --xds-tls-cert", "SLUICE_XDS_TLS_KEY")
	str(&f.tlsSAN, "xds-tls-server-name", "", "name the xDS server's certificate must carry (default: the host of --xds-server)", "SLUICE_XDS_TLS_SERVER_NAME")

	boolean := func(p *bool, name string, def bool, usage string, keys ...string) {
		v, set, err := envParse(getenv, strconv.ParseBool, "true or false", keys...)
		f.envErr = errors.Join(f.envErr, err)
		if !set {
			v = def
		}
		fs.BoolVar(p, name, v, usage+envNames(keys))
	}
	boolean(&f.useTLS, "xds-tls", false, "connect to the xDS server over TLS (implied by any --xds-tls-* file)", "SLUICE_XDS_TLS")
	boolean(&f.backoffJitter, "xds-backoff-jitter", true, "spread reconnect waits by ± the random factor", "SLUICE_XDS_BACKOFF_JITTER")

	duration := func(p *time.Duration, name string, def time.Duration, usage string, keys ...string) {
		v, set, err := envParse(getenv, time.ParseDuration, "a duration like 10s", keys...)
		f.envErr = errors.Join(f.envErr, err)
		if !set {
			v = def
		}
		fs.DurationVar(p, name, v, usage+envNames(keys))
	}
	duration(&f.backoffInitial, "xds-backoff-initial", xds.DefaultBackoffInitial, "wait before the first reconnect to the xDS server; doubled at each failure", "SLUICE_XDS_BACKOFF_INITIAL")
	duration(&f.backoffMax, "xds-backoff-max", xds.DefaultBackoffMax, "longest wait between reconnects", "SLUICE_XDS_BACKOFF_MAX")

	factor, set, err := envParse(getenv, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }, "a number", "SLUICE_XDS_BACKOFF_RANDOM_FACTOR")
	f.envErr = errors.Join(f.envErr, err)
	if !set {
		factor = xds.DefaultBackoffRandomFactor
	}
	fs.Float64Var(&f.backoffRandomFactor, "xds-backoff-random-factor", factor, "reconnect waits vary by ± this fraction, below 1"+envNames([]string{"SLUICE_XDS_BACKOFF_RANDOM_FACTOR"}))

	maxMsg, _, err := envParse(getenv, strconv.Atoi, "a number of bytes", "SLUICE_XDS_MAX_MSG_BYTES")
	f.envErr = errors.Join(f.envErr, err)
	fs.IntVar(&f.maxMsgBytes, "xds-max-msg-bytes", maxMsg, "largest xDS response accepted (0: gRPC's 4 MiB)"+envNames([]string{"SLUICE_XDS_MAX_MSG_BYTES"}))
	return f
}

// check reports variables that do not parse and a config type that is
// neither; call it after parsing.
func (f *xdsFlags) check() error {
	switch f.kind() {
	case configTypeFile, configTypeXDS:
	default:
		return errors.Join(f.envErr, fmt.Errorf("--config-type %q: want file or grpc-xds-sotw", f.configType))
	}
	return f.envErr
}

// kind is the config type in its flag spelling: upstream's GRPC_XDS_SOTW
// and FILE are read in any case.
func (f *xdsFlags) kind() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(f.configType)), "_", "-")
}

// enabled says whether the config comes over xDS.
func (f *xdsFlags) enabled() bool { return f.kind() == configTypeXDS }

// source sets cfg.ConfigSource to the xDS client when the config comes
// over xDS; a --config given as well is ignored, with a warning (upstream's
// RUNTIME_* variables often stay in a Deployment moved to xDS).
func (f *xdsFlags) source(cfg *server.Config, logger *slog.Logger) error {
	if !f.enabled() {
		return nil
	}
	if cfg.ConfigPath != "" {
		logger.Warn("the config comes over xDS (--config-type grpc-xds-sotw); --config is ignored", "config", cfg.ConfigPath)
		cfg.ConfigPath = ""
	}
	md, err := pairs(f.nodeMetadata, "=", "--xds-node-metadata")
	if err != nil {
		return err
	}
	headers, err := pairs(f.headers, ":", "--xds-headers")
	if err != nil {
		return err
	}
	o := xds.Options{
		Server: f.server, NodeID: f.nodeID, NodeMetadata: md, Headers: headers, MaxRecvMsgBytes: f.maxMsgBytes,
		Backoff:      xds.Backoff{Initial: f.backoffInitial, Max: f.backoffMax, RandomFactor: f.backoffRandomFactor, NoJitter: !f.backoffJitter},
		MergeDomains: cfg.MergeDomainConfig, Logger: logger,
	}
	if f.useTLS || f.tlsCA != "" || f.tlsCert != "" || f.tlsKey != "" || f.tlsSAN != "" {
		o.TLS = &xds.TLS{CAFile: f.tlsCA, CertFile: f.tlsCert, KeyFile: f.tlsKey, ServerName: f.tlsSAN}
	}
	c, err := xds.New(o)
	if err != nil {
		return err
	}
	cfg.ConfigSource = c
	return nil
}

// pairs reads "k<sep>v,k<sep>v"; an entry without sep is an error naming
// the flag.
func pairs(s, sep, flagName string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, entry := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(entry), sep)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not key%svalue", flagName, entry, sep)
		}
		m[k] = v
	}
	return m, nil
}

// envFirst is the first of keys that is set, else def.
func envFirst(getenv func(string) string, def string, keys ...string) string {
	for _, k := range keys {
		if v := getenv(k); v != "" {
			return v
		}
	}
	return def
}

// envParse parses the first of keys that is set; set is false when none
// is, and an error names the variable when it does not parse.
func envParse[T any](getenv func(string) string, parse func(string) (T, error), want string, keys ...string) (v T, set bool, err error) {
	for _, k := range keys {
		raw := getenv(k)
		if raw == "" {
			continue
		}
		v, err := parse(raw)
		if err != nil {
			return v, true, fmt.Errorf("%s=%q: want %s", k, raw, want)
		}
		return v, true, nil
	}
	return v, false, nil
}

// envNames is the " (env A, or B)" ending of a flag's usage.
func envNames(keys []string) string {
	return " (env " + strings.Join(keys, ", or ") + ")"
}
