package xds

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is how long the client waits before it reconnects: Initial after
// the first failure, twice as long after each further one, never more than
// Max; a stream that delivered a response starts the count again. The zero
// value is envoyproxy/ratelimit's defaults (XDS_CLIENT_BACKOFF_*).
type Backoff struct {
	// Initial is the first wait. (Optional, default 10s)
	Initial time.Duration
	// Max caps every wait. (Optional, default 60s)
	Max time.Duration
	// RandomFactor spreads each wait over ±that fraction of it, so that
	// replicas cut off together do not all come back together. (Optional,
	// default 0.5; must be below 1)
	RandomFactor float64
	// NoJitter makes every wait exact: Initial, 2·Initial, ... (Optional,
	// default false: jittered, as XDS_CLIENT_BACKOFF_JITTER=true)
	NoJitter bool
}

// Upstream's defaults.
const (
	DefaultBackoffInitial      = 10 * time.Second
	DefaultBackoffMax          = 60 * time.Second
	DefaultBackoffRandomFactor = 0.5
)

func (b *Backoff) setDefaults() {
	if b.Initial == 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoffMax, b.Initial)
	}
	if b.RandomFactor == 0 {
		b.RandomFactor = DefaultBackoffRandomFactor
	}
}

// Validate reports a backoff that cannot work.
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial < 0 {
		errs = append(errs, errors.New("backoff initial interval: must not be negative"))
	}
	if b.Max < 0 || (b.Max > 0 && b.Max < b.Initial) {
		errs = append(errs, errors.New("backoff max interval: must not be below the initial interval"))
	}
	if b.RandomFactor < 0 || b.RandomFactor >= 1 {
		errs = append(errs, errors.New("backoff random factor: must be at least 0 and below 1"))
	}
	return errors.Join(errs...)
}

// wait is the wait before reconnect attempt n (0 for the first).
func (b Backoff) wait(n int) time.Duration {
	d := b.Initial
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	if !b.NoJitter {
		d = time.Duration(float64(d) * (1 + b.RandomFactor*(2*rand.Float64()-1)))
	}
	return min(d, b.Max)
}
