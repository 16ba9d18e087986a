package limiter

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestOverLimitCacheAnswersWithoutRedisUntilReopen(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}}
	for range 3 {
		check(t, l, req)
	}
	first := check(t, l, req)
	if !first.Over || first.Cached {
		t.Fatalf("the first refusal must come from Redis: %+v", first)
	}
	calls := mr.CommandCount()
	for range 50 {
		dec := check(t, l, req)
		if !dec.Over || !dec.Cached || dec.Body != DefaultOverLimitBody || header(dec, HeaderRetryAfter) == "" {
			t.Fatalf("refusal from the cache: %+v", dec)
		}
	}
	if got := mr.CommandCount(); got != calls {
		t.Errorf("%d Redis commands for 50 refusals the cache knew", got-calls)
	}
	// Production is not blocked by the sandbox entry.
	if dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{desc("api", "PizzaShackAPI:1.0.0", "environment", "production")}}); dec.Over {
		t.Fatalf("production refused: %+v", dec)
	}
	// When the sandbox window frees up, Redis is asked again and admits.
	mr.SetTime(mr.now.Add(first.Statuses[0].RetryAfter))
	if dec := check(t, l, req); dec.Over || dec.Cached {
		t.Fatalf("after retry_after: %+v", dec)
	}
}

// TestOverLimitCacheForgetsRefundedCounters: Envoy's negative hits give a
// refused counter room again, and the replica that took them back asks
// Redis at once instead of refusing from memory.
func TestOverLimitCacheForgetsRefundedCounters(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}}
	for range 3 {
		check(t, l, req)
	}
	if dec := check(t, l, req); !dec.Over {
		t.Fatalf("4th call on 3: %+v", dec)
	}
	if dec := check(t, l, req); !dec.Over || !dec.Cached {
		t.Fatalf("the refusal is not cached: %+v", dec)
	}
	back := sandbox()
	back.Negative, back.Hits = true, 1
	if dec := check(t, l, Request{Domain: "apim", Descriptors: []Descriptor{back}}); dec.Over || dec.Statuses[0].Limits[0].Charged != -1 {
		t.Fatalf("giving one hit back: %+v", dec)
	}
	if dec := check(t, l, req); dec.Over || dec.Cached {
		t.Fatalf("after a hit was given back: %+v, want admitted by Redis", dec)
	}
}

func TestOverLimitCacheSkipsCostsAboveOneAndTokens(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	big := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}, Hits: 3}
	check(t, l, big)
	if dec := check(t, l, big); !dec.Over || dec.Cached {
		t.Fatalf("refusal of cost 3: %+v", dec)
	}
	calls := mr.CommandCount()
	if dec := check(t, l, big); dec.Cached || mr.CommandCount() == calls {
		t.Errorf("a refusal at cost 3 was remembered: a cost-1 call may fit sooner")
	}
}

func TestCircuitBreakerFailsFastAndRecovers(t *testing.T) {
	l, mr := newTestLimiter(t, testConfig)
	req := Request{Domain: "apim", Descriptors: []Descriptor{sandbox()}}
	check(t, l, req)
	addr := mr.Addr()
	mr.Close()
	ctx := context.Background()
	for range 5 {
		_, err := l.ShouldRateLimit(ctx, &req)
		var se *StoreError
		if !errors.As(err, &se) {
			t.Fatalf("redis down: %v, want a StoreError", err)
		}
	}
	start := time.Now()
	_, err := l.ShouldRateLimit(ctx, &req)
	if !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("after 5 failures: %v, want ErrCircuitOpen", err)
	}
	if took := time.Since(start); took > 10*time.Millisecond {
		t.Errorf("an open circuit took %v to answer", took)
	}
	if err := mr.StartAddr(addr); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		dec, err := l.ShouldRateLimit(ctx, &req)
		if err == nil {
			if dec.Over {
				t.Fatalf("after recovery: %+v", dec)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never recovered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestFailOpenDomainAdmitsMarkedWhenRedisIsDown(t *testing.T) {
	l, mr := newTestLimiter(t, "domain: open\nfailure_mode: open\ndescriptors:\n  - key: api\n    rate_limit: {unit: second, requests_per_unit: 1}\n")
	mr.Close()
	dec, err := l.ShouldRateLimit(context.Background(), &Request{Domain: "open", Descriptors: []Descriptor{desc("api", "x")}})
	if err != nil {
		t.Fatalf("fail-open domain: %v", err)
	}
	if dec.Over || !dec.FailedOpen {
		t.Errorf("decision %+v, want admitted and marked failed open", dec)
	}
}

// TestOverLimitCacheAnswersCompleteStatuses: a refusal from the over-limit
// cache carries, for every descriptor, what a refusal from Redis carries —
// the deciding limit, what remains and when it resets — not only for the
// refusing one.
func TestOverLimitCacheAnswersCompleteStatuses(t *testing.T) {
	l, _ := newTestLimiter(t, testConfig)
	prod := desc("api", "PizzaShackAPI:1.0.0", "environment", "production")
	req := Request{Domain: "apim", Descriptors: []Descriptor{prod, sandbox()}}
	for range 3 {
		check(t, l, req)
	}
	fromRedis := check(t, l, req)
	if !fromRedis.Over || fromRedis.Cached {
		t.Fatalf("the first refusal must come from Redis: %+v", fromRedis)
	}
	cached := check(t, l, req)
	if !cached.Over || !cached.Cached {
		t.Fatalf("the second refusal must come from the cache: %+v", cached)
	}
	for i := range req.Descriptors {
		r, c := fromRedis.Statuses[i], cached.Statuses[i]
		if c.Limit != r.Limit || c.Over != r.Over || c.Remaining != r.Remaining || len(c.Limits) != len(r.Limits) {
			t.Errorf("descriptor %d from the cache %+v, from Redis %+v", i, c, r)
		}
		// The clock has not moved: the reset is the same.
		if c.ResetAfter != r.ResetAfter || c.ResetAfter <= 0 {
			t.Errorf("descriptor %d: reset %v from the cache, %v from Redis", i, c.ResetAfter, r.ResetAfter)
		}
	}
	if prod := cached.Statuses[0]; prod.Over || prod.Remaining != 97 {
		t.Errorf("production under its cap, from the cache: %+v, want 97 remaining", prod)
	}
}
