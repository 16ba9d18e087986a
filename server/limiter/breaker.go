package limiter

import (
	"errors"
	"sync"
	"time"
)

// ErrCircuitOpen is the store error while the circuit breaker keeps calls
// away from a Redis that has been failing.
var ErrCircuitOpen = errors.New("circuit open: redis has been failing; calls resume after a successful probe")

// breaker stops a dead Redis from costing every call a timeout. After
// failThreshold failures in a row it opens: calls fail at once for a
// cooldown, then one call at a time is let through as a probe; a probe that
// succeeds closes it, one that fails opens it again with the cooldown
// doubled, up to maxCooldown.
type breaker struct {
	failThreshold int
	minCooldown   time.Duration
	maxCooldown   time.Duration
	now           func() time.Time
	opened        func() // told when a closed circuit opens; nil for nobody

	mu       sync.Mutex
	fails    int
	openTill time.Time // zero when closed
	cooldown time.Duration
	probing  bool
}

func newBreaker() *breaker {
	return &breaker{failThreshold: 5, minCooldown: 250 * time.Millisecond, maxCooldown: time.Second, now: time.Now}
}

// allow reports whether a call may go to Redis now. A true answer for a
// probe must be followed by done.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.openTill.IsZero() {
		return true
	}
	if b.probing || b.now().Before(b.openTill) {
		return false
	}
	b.probing = true
	return true
}

// done records the outcome of a call that allow let through.
func (b *breaker) done(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.fails, b.openTill, b.cooldown, b.probing = 0, time.Time{}, 0, false
		return
	}
	b.fails++
	if b.probing || b.fails >= b.failThreshold {
		b.open()
		b.probing = false
	}
}

// open opens the circuit (again) for a cooldown doubled from the last one.
// The caller holds mu.
func (b *breaker) open() {
	if b.openTill.IsZero() && b.opened != nil {
		b.opened()
	}
	b.cooldown = min(max(2*b.cooldown, b.minCooldown), b.maxCooldown)
	b.openTill = b.now().Add(b.cooldown)
}

// abandon records a call that ended without telling anything about Redis
// (its caller gave up): a probe slot it held is freed.
func (b *breaker) abandon() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// healthy records that Redis answered a health probe made outside the
// breaker: an open circuit closes at once instead of waiting out its
// cooldown.
func (b *breaker) healthy() {
	b.mu.Lock()
	if !b.openTill.IsZero() && !b.probing {
		b.fails, b.openTill, b.cooldown = 0, time.Time{}, 0
	}
	b.mu.Unlock()
}

// pingFailed records that Redis failed a ping made outside the breaker under
// a timeout of the server's own: one failure, as of a call. It changes
// nothing while the circuit is open (its own probes decide then).
func (b *breaker) pingFailed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.openTill.IsZero() {
		return
	}
	b.fails++
	if b.fails >= b.failThreshold {
		b.open()
	}
}

// isOpen reports whether the circuit is open (or half-open: probing).
func (b *breaker) isOpen() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.openTill.IsZero()
}
