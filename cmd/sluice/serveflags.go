package main

import (
	"fmt"
	"strings"

	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/grpcapi"
)

// addServeFlags defines the serve flags of the Redis connection (client TLS,
// pool size, key prefix), of global shadow mode and of Envoy's header names.
// finish, called after parsing, fills what needs converting.
func addServeFlags(e *envFlags, cfg *server.Config) (finish func() error) {
	e.string(&cfg.RedisTLS.CA, "redis-tls-ca", "", "PEM CAs the Redis servers' certificates must be signed by (rediss URLs; default: the system's)")
	e.string(&cfg.RedisTLS.Cert, "redis-tls-cert", "", "PEM client certificate for a Redis that requires one (mutual TLS; rediss URLs), reread when it changes")
	e.string(&cfg.RedisTLS.Key, "redis-tls-key", "", "PEM key of --redis-tls-cert")
	e.bool(&cfg.RedisTLS.SkipHostnameVerification, "redis-tls-skip-hostname-verification", false, "check the Redis certificate's chain but not that it names the host dialled")
	e.int(&cfg.RedisPoolSize, "redis-pool-size", 0, "connections per Redis node (0: go-redis's default, 10 per CPU)")
	e.string(&cfg.KeyPrefix, "key-prefix", "sluice:", "prefix of every Redis key, to keep deployments sharing a Redis apart")
	e.bool(&cfg.ShadowMode, "shadow-mode", false, "every limit in shadow mode, as envoyproxy/ratelimit's SHADOW_MODE=true: nothing is refused, limits count what they would admit")
	var names string
	e.string(&names, "envoy-header-names", "", "LIMIT,REMAINING,RESET: the names of the headers of --envoy-response-headers, an empty one keeps its default")
	return func() error {
		if names == "" {
			return nil
		}
		parts := strings.Split(names, ",")
		if len(parts) != 3 {
			return fmt.Errorf("--envoy-header-names %q: want three names, limit,remaining,reset (an empty one keeps its default)", names)
		}
		cfg.EnvoyHeaderNames = grpcapi.HeaderNames{Limit: strings.TrimSpace(parts[0]), Remaining: strings.TrimSpace(parts[1]), Reset: strings.TrimSpace(parts[2])}
		return nil
	}
}
