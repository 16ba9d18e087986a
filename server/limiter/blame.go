package limiter

// How a failed store call is judged
//
// The circuit breaker counts only failures Redis caused: one caller's bad
// input or short deadline must never open it for every caller. A store call
// ends in one of four ways.
//
//   - Redis answered: a success, whatever the answer was.
//   - The script wrapper refused the call's arguments before sending anything
//     (lua.ErrArgument): Sluice's own error, an internal error for the
//     caller; the breaker learns nothing.
//   - The caller's context ended first. A caller that left (Canceled) tells
//     nothing about Redis. A deadline that gave the call less than the
//     patience (DefaultRedisPatience, far above what a healthy Redis takes)
//     was shorter than the call needed, and that is the caller's: a
//     *CallerGoneError (DeadlineExceeded; never Unavailable, never failed
//     open), not a Redis failure in the breaker or in the metrics. A
//     deadline that gave it the patience or more is a *StoreError for the
//     caller (Unavailable, or failed open): it gave Redis ample time. The breaker
//     counts it only when Redis answered no other call meanwhile — a Redis
//     that keeps answering is alive, and a call that waited that long waited
//     on a loaded machine or a queue, not on a dead Redis.
//   - Anything else — connection refused or reset, OOM, LOADING, a script
//     error — is a failure.
//
// A Redis that hangs while every caller's deadline is below the patience
// (Envoy's default is 20 ms) would then never be blamed. So when such a
// call ends and Redis has answered nothing — no call, no ping — for a whole
// patience, the limiter pings Redis itself, at most one ping at a time and
// under a timeout of one patience, detached from every caller: a ping that
// fails counts as one failure, one that succeeds shows Redis alive. While
// Redis answers other calls, no ping is sent.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

// DefaultRedisPatience is how long a store call may wait on Redis before a
// deadline that runs out counts as Redis' failure rather than the caller's.
// A healthy Redis answers in well under a millisecond; 100 ms is what only a
// hung or overloaded one takes.
const DefaultRedisPatience = 100 * time.Millisecond

// CallerGoneError is a store call that ended because its caller's deadline
// ran out, or its caller left, before Redis answered and too soon to blame
// Redis (see blame.go). Err is context.DeadlineExceeded or
// context.Canceled, and errors.Is matches it. Nothing is known to have been
// decided, as with a StoreError, but the domain's failure policy does not
// apply: the failure is the caller's.
type CallerGoneError struct {
	Err    error
	Waited time.Duration // how long the call had waited on Redis
}

func (e *CallerGoneError) Error() string {
	who := "the caller's deadline ran out"
	if errors.Is(e.Err, context.Canceled) {
		who = "the caller left"
	}
	return fmt.Sprintf("%s after %v waiting on redis (not a redis failure): %v", who, e.Waited.Round(time.Microsecond), e.Err)
}

func (e *CallerGoneError) Unwrap() error { return e.Err }

// SetRedisPatience changes DefaultRedisPatience. Call it before serving.
func (l *Limiter) SetRedisPatience(d time.Duration) { l.patience = d }

// SetPing gives the limiter a ping of Redis for the calls it cannot judge
// (see blame.go). New takes the client's own Ping when rdb has one; a nil
// ping sends none. Call it before serving.
func (l *Limiter) SetPing(ping func(context.Context) error) { l.ping = ping }

// defaultPing is rdb's Ping, when it has one.
func defaultPing(rdb redis.Scripter) func(context.Context) error {
	p, ok := rdb.(interface {
		Ping(context.Context) *redis.StatusCmd
	})
	if !ok {
		return nil
	}
	return func(ctx context.Context) error { return p.Ping(ctx).Err() }
}

// judge tells the breaker what a store call that started at start and took
// took says about Redis, and returns the error its caller gets: nil, a
// *StoreError, a *CallerGoneError, or a lua.ErrArgument error.
func (l *Limiter) judge(ctx context.Context, err error, start time.Time, took time.Duration) error {
	end := start.Add(took)
	if err == nil {
		l.breaker.done(nil)
		l.answered(end)
		return nil
	}
	if errors.Is(err, lua.ErrArgument) {
		l.breaker.abandon()
		return fmt.Errorf("counter store call: %w", err)
	}
	switch cause := callerEnded(ctx, end); {
	case cause == nil:
	case cause == context.DeadlineExceeded && budget(ctx, start, took) >= l.patience:
		// Redis had all the time a healthy one needs: the caller's answer
		// is Redis', but the breaker hears of it only if Redis answered
		// nobody else meanwhile.
		if l.lastAnswer.Load() > start.UnixNano() {
			l.breaker.abandon()
			return &StoreError{Err: err}
		}
	default:
		l.breaker.abandon()
		if cause == context.DeadlineExceeded {
			l.suspect(end)
		}
		return &CallerGoneError{Err: cause, Waited: took}
	}
	l.breaker.done(err)
	return &StoreError{Err: err}
}

// budget is the time the caller's deadline gave a call that started at
// start: measured from its deadline, not from when the call noticed it ran
// out (a starved goroutine may notice late).
func budget(ctx context.Context, start time.Time, took time.Duration) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return d.Sub(start)
	}
	return took
}

// callerEnded is why ctx ended by now: context.Canceled,
// context.DeadlineExceeded (also when the deadline has passed and ctx does
// not know yet: a connection's deadline may fire first), or nil.
func callerEnded(ctx context.Context, now time.Time) error {
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.Canceled) {
			return context.Canceled
		}
		return context.DeadlineExceeded
	}
	if d, ok := ctx.Deadline(); ok && !now.Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// answered records that Redis answered at now. It writes at most eight
// times a patience, so that concurrent calls do not contend for it.
func (l *Limiter) answered(now time.Time) {
	n := now.UnixNano()
	if n-l.lastAnswer.Load() >= int64(l.patience/8) {
		l.lastAnswer.Store(n)
	}
}

// suspect is told of a call whose caller's deadline ran out too soon to
// blame Redis. When Redis has answered nothing for a patience, it pings
// Redis in the background unless a ping is on its way already.
func (l *Limiter) suspect(now time.Time) {
	if l.ping == nil || now.UnixNano()-l.lastAnswer.Load() < int64(l.patience) || l.breaker.isOpen() {
		return
	}
	if !l.pinging.CompareAndSwap(false, true) {
		return
	}
	go l.pingRedis()
}

// pingRedis pings Redis under a timeout of one patience and tells the
// breaker a failure.
func (l *Limiter) pingRedis() {
	defer l.pinging.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), l.patience)
	defer cancel()
	if err := l.ping(ctx); err != nil {
		l.breaker.pingFailed()
		return
	}
	l.answered(time.Now())
}
