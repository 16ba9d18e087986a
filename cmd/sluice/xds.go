package main

import (
	"fmt"
	"log/slog"
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
}

// Config types of --config-type.
const (
	configTypeFile = "file"
	configTypeXDS  = "grpc-xds-sotw"
)

// addXDSFlags defines the flags; call check after parsing.
func addXDSFlags(e *envFlags) *xdsFlags {
	f := &xdsFlags{}
	e.string(&f.configType, "config-type", configTypeFile, "where the limits config comes from: file (--config) or grpc-xds-sotw (an xDS management server, as envoyproxy/ratelimit's CONFIG_TYPE=GRPC_XDS_SOTW)")
	e.string(&f.server, "xds-server", "localhost:18000", "xDS management server, host:port")
	e.string(&f.nodeID, "xds-node-id", xds.DefaultNodeID, "node id sent to the xDS server, which keys its snapshots by it")
	e.string(&f.nodeMetadata, "xds-node-metadata", "", "node metadata sent to the xDS server, key=value,key=value")
	e.string(&f.headers, "xds-headers", "", "gRPC headers sent on the xDS stream, key:value,key:value")
	e.string(&f.tlsCA, "xds-tls-ca", "", "PEM CAs that sign the xDS server's certificate (default: the system's)")
	e.string(&f.tlsCert, "xds-tls-cert", "", "PEM client certificate for mutual TLS to the xDS server")
	e.string(&f.tlsKey, "xds-tls-key", "", "PEM key of --xds-tls-cert")
	e.string(&f.tlsSAN, "xds-tls-server-name", "", "name the xDS server's certificate must carry (default: the host of --xds-server)")
	e.bool(&f.useTLS, "xds-tls", false, "connect to the xDS server over TLS (implied by any --xds-tls-* file)")
	e.bool(&f.backoffJitter, "xds-backoff-jitter", true, "spread reconnect waits by ± the random factor")
	e.duration(&f.backoffInitial, "xds-backoff-initial", xds.DefaultBackoffInitial, "wait before the first reconnect to the xDS server; doubled at each failure")
	e.duration(&f.backoffMax, "xds-backoff-max", xds.DefaultBackoffMax, "longest wait between reconnects")
	e.float(&f.backoffRandomFactor, "xds-backoff-random-factor", xds.DefaultBackoffRandomFactor, "reconnect waits vary by ± this fraction, below 1")
	e.bytes(&f.maxMsgBytes, "xds-max-msg-bytes", 0, "largest xDS response accepted (0: gRPC's 4 MiB)")
	return f
}

// check reports a config type that is neither file nor grpc-xds-sotw.
func (f *xdsFlags) check() error {
	switch f.kind() {
	case configTypeFile, configTypeXDS:
		return nil
	}
	return fmt.Errorf("--config-type %q: want file or grpc-xds-sotw", f.configType)
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
