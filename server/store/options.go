package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// apply lays Config's TLS and pool size over the options a URL gave.
func (t *target) apply(cfg Config) error {
	if cfg.PoolSize < 0 {
		return errors.New("redis pool size: must not be negative")
	}
	var current **tls.Config
	switch {
	case t.failover != nil:
		current = &t.failover.TLSConfig
		t.failover.PoolSize = cfg.PoolSize
	case t.cluster != nil:
		current = &t.cluster.TLSConfig
		t.cluster.PoolSize = cfg.PoolSize
	default:
		current = &t.single.TLSConfig
		t.single.PoolSize = cfg.PoolSize
	}
	if cfg.TLS == nil {
		return nil
	}
	if *current == nil {
		return errors.New("redis tls: a CA, a client certificate or skipping hostname verification needs a TLS URL: rediss://, rediss+sentinel:// or rediss+cluster://")
	}
	c := cfg.TLS.Clone()
	c.ServerName = (*current).ServerName // a single node's host, from its URL; empty otherwise (each node checks the host it dials)
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	*current = c
	return nil
}

// explainTLS adds what to do to an error that says the server wanted a
// client certificate (or refused the one it got).
func explainTLS(err error) error {
	msg := err.Error()
	if strings.Contains(msg, "--redis-tls-cert") {
		return err
	}
	if strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority") {
		return fmt.Errorf("%w (the Redis server requires a client certificate it trusts: give --redis-tls-cert and --redis-tls-key)", err)
	}
	return err
}

// sentinelCause adds why the Sentinels could not be asked to err, which
// go-redis reports as "all sentinels ... are unreachable" with only the
// context's error — or as the context's error alone, when its dial retries
// used up the caller's deadline first: each Sentinel is pinged once more,
// and its own error (a refused connection, a TLS alert for a missing client
// certificate) joined.
func (s *Store) sentinelCause(ctx context.Context, err error) error {
	if !strings.Contains(err.Error(), "all sentinels") && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	o := s.failover
	var causes []error
	for _, addr := range o.SentinelAddrs {
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sentinelTimeout)
		c := redis.NewSentinelClient(&redis.Options{
			Addr: addr, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: o.TLSConfig,
			DialTimeout: sentinelTimeout, MaxRetries: -1, PoolSize: 1,
		})
		if perr := c.Ping(pctx).Err(); perr != nil {
			causes = append(causes, fmt.Errorf("sentinel %s: %w", addr, explainTLS(perr)))
		}
		_ = c.Close()
		cancel()
	}
	if len(causes) == 0 {
		return err
	}
	return fmt.Errorf("%w; %w", err, errors.Join(causes...))
}
