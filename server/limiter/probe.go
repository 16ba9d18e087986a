package limiter

import (
	"context"
	"fmt"
	"time"

	"github.com/sluice-rl/sluice/lua"
)

// probeKey is the counter Probe charges, under the limiter's prefix.
const probeKey = "probe:{readiness}"

// Probe makes one scripted write as a decision does — the window script
// charging a counter of its own (under the key prefix, expiring within two
// seconds), through the same client and pipeline — so that readiness follows
// what calls see: a Redis that answers PING but refuses every script (OOM
// under noeviction, a replica that turned read-only, a script cache that
// fails) is not ready. It goes around the circuit breaker, and a success
// closes an open circuit at once. A failure is a *StoreError.
func (l *Limiter) Probe(ctx context.Context) error {
	c := lua.Counter{Key: l.prefix + probeKey, Bucket: time.Second, Buckets: 1, Limit: 1<<53 - 1, Cost: 1}
	if _, err := l.window.Run(ctx, l.rdb, lua.Charge, []lua.Counter{c}); err != nil {
		return &StoreError{Err: fmt.Errorf("readiness write: %w", err)}
	}
	l.breaker.healthy()
	l.answered(time.Now())
	return nil
}
