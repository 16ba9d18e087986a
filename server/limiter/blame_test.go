package limiter

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

// slowRedis delays every script call by delay, or holds it until its context
// ends while hung: a Redis that is slow, or that hangs.
type slowRedis struct {
	redis.Scripter
	delay time.Duration
	hung  atomic.Bool
}

func (s *slowRedis) wait(ctx context.Context) *redis.Cmd {
	var timer <-chan time.Time
	if !s.hung.Load() {
		timer = time.After(s.delay)
	}
	select {
	case <-timer:
		return nil
	case <-ctx.Done():
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(ctx.Err())
		return cmd
	}
}

func (s *slowRedis) Eval(ctx context.Context, src string, keys []string, args ...any) *redis.Cmd {
	if cmd := s.wait(ctx); cmd != nil {
		return cmd
	}
	return s.Scripter.Eval(ctx, src, keys, args...)
}

func (s *slowRedis) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	if cmd := s.wait(ctx); cmd != nil {
		return cmd
	}
	return s.Scripter.EvalSha(ctx, sha, keys, args...)
}

const failOpenConfig = "domain: open\nfailure_mode: open\ndescriptors:\n  - key: api\n    rate_limit: {unit: minute, requests_per_unit: 1000}\n"

func openRequest() *Request {
	return &Request{Domain: "open", Descriptors: []Descriptor{desc("api", "x")}}
}

// withDeadline runs ShouldRateLimit with a deadline of d.
func withDeadline(l *Limiter, d time.Duration, req *Request) (Decision, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return l.ShouldRateLimit(ctx, req)
}

// TestCallersShortDeadlineIsNotARedisFailure: a Redis that needs 5 ms for
// callers who give it 1 ms. Their calls end DeadlineExceeded, as the
// caller's failure: no StoreError, no fail-open admission, and the circuit
// stays closed for a caller with time to wait.
func TestCallersShortDeadlineIsNotARedisFailure(t *testing.T) {
	l, _ := newTestLimiter(t, failOpenConfig)
	l.rdb = &slowRedis{Scripter: l.rdb, delay: 5 * time.Millisecond}
	for i := range 50 {
		dec, err := withDeadline(l, time.Millisecond, openRequest())
		var gone *CallerGoneError
		var se *StoreError
		if !errors.As(err, &gone) || !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &se) {
			t.Fatalf("call %d with a 1 ms deadline on a Redis that needs 5 ms: %+v, %v; want a CallerGoneError (DeadlineExceeded)", i, dec, err)
		}
		if dec.FailedOpen {
			t.Fatalf("call %d: a caller's own deadline failed open", i)
		}
	}
	if l.breaker.isOpen() {
		t.Fatal("callers' own short deadlines opened the circuit")
	}
	dec, err := withDeadline(l, time.Second, openRequest())
	if err != nil || dec.Over || dec.FailedOpen {
		t.Fatalf("a caller with a 1 s deadline after them: %+v, %v; want admitted by Redis", dec, err)
	}
}

// TestDeadlinePastThePatienceIsARedisFailure: a call that waited on Redis
// longer than a healthy Redis ever needs is Redis' failure, whoever's
// deadline ended it: five open the circuit.
func TestDeadlinePastThePatienceIsARedisFailure(t *testing.T) {
	l, _ := newTestLimiter(t, failOpenConfig)
	l.SetRedisPatience(10 * time.Millisecond)
	l.rdb = &slowRedis{Scripter: l.rdb, delay: time.Second}
	for i := range 5 {
		dec, err := withDeadline(l, 30*time.Millisecond, openRequest())
		if err != nil || !dec.FailedOpen {
			t.Fatalf("call %d that waited 30 ms (patience 10 ms): %+v, %v; want failed open (a Redis failure)", i, dec, err)
		}
	}
	start := time.Now()
	if dec, err := withDeadline(l, time.Second, openRequest()); err != nil || !dec.FailedOpen || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("after 5 Redis failures: %+v, %v after %v; want failed open at once (circuit open)", dec, err, time.Since(start))
	}
	if !l.breaker.isOpen() {
		t.Fatal("the circuit did not open")
	}
}

// TestHungRedisOpensTheCircuitForShortDeadlines: every caller gives Redis
// 2 ms (below the patience), and Redis hangs. The limiter's own ping, under
// its own timeout, finds it out: the circuit opens, and the pings went one
// at a time.
func TestHungRedisOpensTheCircuitForShortDeadlines(t *testing.T) {
	l, _ := newTestLimiter(t, failOpenConfig)
	l.SetRedisPatience(20 * time.Millisecond)
	slow := &slowRedis{Scripter: l.rdb}
	slow.hung.Store(true)
	l.rdb = slow
	var pings, inFlight, maxInFlight atomic.Int64
	l.SetPing(func(ctx context.Context) error {
		pings.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		<-ctx.Done() // hung
		return ctx.Err()
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := withDeadline(l, 2*time.Millisecond, openRequest())
		if errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("a fail-open domain answered ErrCircuitOpen: %v", err)
		}
		if l.breaker.isOpen() {
			break
		}
		var gone *CallerGoneError
		if !errors.As(err, &gone) {
			t.Fatalf("a 2 ms call on a hung Redis before the circuit opened: %v, want a CallerGoneError", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the circuit never opened; %d pings", pings.Load())
		}
	}
	if dec, err := withDeadline(l, 2*time.Millisecond, openRequest()); err != nil || !dec.FailedOpen {
		t.Fatalf("with the circuit open: %+v, %v; want failed open at once", dec, err)
	}
	if n := pings.Load(); n < int64(l.breaker.failThreshold) {
		t.Errorf("%d pings opened the circuit; want %d failures", n, l.breaker.failThreshold)
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("%d pings at once, want one at a time", m)
	}
}

// TestCallerLeftAndRefusedArgumentsAreNotRedisFailures: a caller that
// leaves, and a call the script wrapper refuses before sending it, say
// nothing about Redis.
func TestCallerLeftAndRefusedArgumentsAreNotRedisFailures(t *testing.T) {
	l, _ := newTestLimiter(t, failOpenConfig)
	for range 10 {
		err := l.storeCall(context.Background(), "window", func(context.Context) error {
			_, err := l.window.Run(context.Background(), l.rdb, lua.Charge, nil) // no counters
			return err
		})
		var se *StoreError
		if !errors.Is(err, lua.ErrArgument) || errors.As(err, &se) {
			t.Fatalf("refused arguments: %v, want lua.ErrArgument and no StoreError", err)
		}
	}
	l.rdb = &slowRedis{Scripter: l.rdb, delay: time.Second}
	for range 10 {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Millisecond, cancel)
		dec, err := l.ShouldRateLimit(ctx, openRequest())
		var gone *CallerGoneError
		if !errors.As(err, &gone) || !errors.Is(err, context.Canceled) || dec.FailedOpen {
			t.Fatalf("a caller that left: %+v, %v; want a CallerGoneError (Canceled)", dec, err)
		}
	}
	if l.breaker.isOpen() {
		t.Fatal("refused arguments or callers that left opened the circuit")
	}
}
