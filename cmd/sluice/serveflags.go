package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/grpcapi"
)

// addServeFlags defines the serve flags of the Redis connection (client TLS,
// pool size, key prefix), of global shadow mode and of Envoy's header names.
// finish, called after parsing, reports bad variables and fills what needs
// converting.
func addServeFlags(fs *flag.FlagSet, cfg *server.Config, getenv func(string) string) (finish func() error) {
	var envErr error
	boolFlag := func(p *bool, name, usage, key string) {
		v, err := envBool(getenv, key)
		envErr = errors.Join(envErr, err)
		fs.BoolVar(p, name, v, usage)
	}
	fs.StringVar(&cfg.RedisTLS.CA, "redis-tls-ca", getenv("SLUICE_REDIS_TLS_CA"), "PEM CAs the Redis servers' certificates must be signed by (rediss URLs; default: the system's) (env SLUICE_REDIS_TLS_CA)")
	fs.StringVar(&cfg.RedisTLS.Cert, "redis-tls-cert", getenv("SLUICE_REDIS_TLS_CERT"), "PEM client certificate for a Redis that requires one (mutual TLS; rediss URLs), reread when it changes (env SLUICE_REDIS_TLS_CERT)")
	fs.StringVar(&cfg.RedisTLS.Key, "redis-tls-key", getenv("SLUICE_REDIS_TLS_KEY"), "PEM key of --redis-tls-cert (env SLUICE_REDIS_TLS_KEY)")
	boolFlag(&cfg.RedisTLS.SkipHostnameVerification, "redis-tls-skip-hostname-verification",
		"check the Redis certificate's chain but not that it names the host dialled (env SLUICE_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION)", "SLUICE_REDIS_TLS_SKIP_HOSTNAME_VERIFICATION")
	pool, err := envInt(getenv, "SLUICE_REDIS_POOL_SIZE")
	envErr = errors.Join(envErr, err)
	fs.IntVar(&cfg.RedisPoolSize, "redis-pool-size", pool, "connections per Redis node (0: go-redis's default, 10 per CPU) (env SLUICE_REDIS_POOL_SIZE)")
	fs.StringVar(&cfg.KeyPrefix, "key-prefix", envOr(getenv, "SLUICE_KEY_PREFIX", "sluice:"), "prefix of every Redis key, to keep deployments sharing a Redis apart (env SLUICE_KEY_PREFIX)")
	boolFlag(&cfg.ShadowMode, "shadow-mode", "every limit in shadow mode, as envoyproxy/ratelimit's SHADOW_MODE=true: nothing is refused, limits count what they would admit (env SLUICE_SHADOW_MODE)", "SLUICE_SHADOW_MODE")
	names := fs.String("envoy-header-names", getenv("SLUICE_ENVOY_HEADER_NAMES"), "LIMIT,REMAINING,RESET: the names of the headers of --envoy-response-headers, an empty one keeps its default (env SLUICE_ENVOY_HEADER_NAMES)")
	return func() error {
		if *names != "" {
			parts := strings.Split(*names, ",")
			if len(parts) != 3 {
				return fmt.Errorf("--envoy-header-names %q: want three names, limit,remaining,reset (an empty one keeps its default)", *names)
			}
			cfg.EnvoyHeaderNames = grpcapi.HeaderNames{Limit: strings.TrimSpace(parts[0]), Remaining: strings.TrimSpace(parts[1]), Reset: strings.TrimSpace(parts[2])}
		}
		return envErr
	}
}

// envInt reads key as a whole number; unset is 0.
func envInt(getenv func(string) string, key string) (int, error) {
	v := getenv(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want a whole number", key, v)
	}
	return n, nil
}
