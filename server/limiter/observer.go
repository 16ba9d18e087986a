package limiter

import (
	"context"
	"time"

	"github.com/sluice-rl/sluice/server/config"
)

// Observer is told what the limiter does, for metrics and traces. Its methods
// run on the hot path: they must be cheap, never block, and be safe for
// concurrent use.
type Observer interface {
	// Decided is called after every ShouldRateLimit that reached a
	// decision. rules[i] is what req.Descriptors[i] matched (zero when
	// nothing), aligned with dec.Statuses.
	Decided(ctx context.Context, req *Request, rules []config.Rule, dec *Decision)
	// Reported is called after every successful report.
	Reported(ctx context.Context, req *ReportRequest, res *ReportResult)
	// StoreCall is called after every script call: which script
	// ("window", "reserve", "peek", "report"), how long it took, and its
	// error (nil when it succeeded): a *StoreError when Redis failed (or the
	// circuit breaker kept the call from it), a *CallerGoneError when the
	// caller's deadline or departure ended it (not a Redis failure).
	StoreCall(ctx context.Context, script string, took time.Duration, err error)
}

// LeaseObserver is implemented by an Observer that also wants to know what
// quota leases do (docs/leases.md). LeaseActivity runs once per lease call,
// off the hot path, and must not block.
type LeaseObserver interface {
	LeaseActivity(ctx context.Context, domain string, a LeaseActivity)
}

// CircuitObserver is implemented by an Observer that also wants to know when
// the circuit breaker opens. CircuitOpened must be cheap and never block: it
// runs while the breaker holds its lock.
type CircuitObserver interface {
	CircuitOpened()
}

// LeaseActivity is what lease calls did on the counters of one domain.
type LeaseActivity struct {
	// Grants counts grants of at least one unit.
	Grants int
	// Granted, Returned and Wasted are units: charged in Redis for this
	// replica, given back to Redis unspent, and neither spent nor given
	// back (held until their bucket left the window, or taken back by a
	// decision after their lease was retired).
	Granted, Returned, Wasted uint64
}

// SetObserver makes the limiter tell o what it does. Call it before serving.
func (l *Limiter) SetObserver(o Observer) {
	l.observer = o
	l.breaker.opened = nil
	if co, ok := o.(CircuitObserver); ok {
		l.breaker.opened = co.CircuitOpened
	}
	if l.leases != nil {
		l.leases.observer, _ = o.(LeaseObserver)
	}
}

// storeCall runs one script call through the circuit breaker, under the
// store's share of ctx's time (storeContext), and tells the observer about
// it. A failure comes back as a *StoreError, or — when it was the caller's,
// not Redis' (see blame.go) — as a *CallerGoneError or an internal error.
func (l *Limiter) storeCall(ctx context.Context, script string, run func(ctx context.Context) error) error {
	if !l.breaker.allow() {
		err := &StoreError{Err: ErrCircuitOpen}
		if l.observer != nil {
			l.observer.StoreCall(ctx, script, 0, err)
		}
		return err
	}
	ctx, cancel := storeContext(ctx)
	defer cancel()
	start := time.Now()
	err := run(ctx)
	took := time.Since(start)
	err = l.judge(ctx, err, start, took)
	if l.observer != nil {
		l.observer.StoreCall(ctx, script, took, err)
	}
	return err
}
