package server_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// TestShortDeadlinesNeverOpenTheBreakerForOthers: callers that give a
// healthy Redis 3 ms, through Envoy's API, on their own domain and on the
// victims' fail-open one, beside victims with 1 s deadlines. A deadline
// shorter than the call needed is the caller's: the victims never see
// Unavailable, the circuit never opens, and the fail-open domain admits no
// more than its limit — the attackers' short deadlines fail open for nobody.
func TestShortDeadlinesNeverOpenTheBreakerForOthers(t *testing.T) {
	it := startIsolationTest(t, 4)
	var calls, deadline, unavailable, openAdmitted atomic.Int64
	for a := range 8 {
		domain, desc := "attacker", envoyDesc("remote_address", "10.0.0.1")
		if a%2 == 1 {
			domain, desc = "victims_open", envoyDesc("api", "shared")
		}
		req := &rlsv3.RateLimitRequest{Domain: domain, Descriptors: []*ratelimitv3.RateLimitDescriptor{desc}}
		it.wg.Go(func() {
			for !it.stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Millisecond)
				resp, err := it.envoy.ShouldRateLimit(ctx, req)
				cancel()
				calls.Add(1)
				switch status.Code(err) {
				case codes.OK:
					if domain == "victims_open" && resp.OverallCode == rlsv3.RateLimitResponse_OK {
						openAdmitted.Add(1)
					}
				case codes.DeadlineExceeded:
					deadline.Add(1)
				case codes.Unavailable:
					unavailable.Add(1)
				}
			}
		})
	}
	it.runFor(2 * time.Second)
	t.Logf("attackers: %d calls, %d DeadlineExceeded, %d Unavailable, %d admitted on the fail-open domain", calls.Load(), deadline.Load(), unavailable.Load(), openAdmitted.Load())
	it.v.check(t)
	circuitNeverOpened(t, it.s)
	if n := it.v.openAdmitted.Load() + openAdmitted.Load(); n > 100 {
		t.Errorf("the fail-open domain admitted %d (victims and attackers) against a limit of 100 a minute", n)
	}
	if deadline.Load() == 0 {
		t.Log("no attacker call ran out of its deadline: the machine was fast enough that the attack did not bite")
	}
	series, _ := scrape(t, it.s)
	for k, n := range series {
		if strings.HasPrefix(k, "sluice_redis_errors_total") && n > 0 {
			t.Errorf("%s = %v: a caller's own deadline counted as a Redis error", k, n)
		}
	}
}

// TestHungRedisStillOpensTheBreaker: a Redis that stops answering without
// closing anything opens the circuit — for callers with Envoy's 20 ms
// deadline (shorter than the patience: the limiter's own ping finds it out)
// as for callers with 1 s — and the service answers Unavailable at once
// until Redis answers again.
func TestHungRedisStillOpensTheBreaker(t *testing.T) {
	for _, d := range []time.Duration{20 * time.Millisecond, time.Second} {
		t.Run(d.String(), func(t *testing.T) {
			rs := redistest.New(t)
			proxy := redistest.NewProxy(t, rs.Addr())
			s := startSluice(t, writeConfigDir(t, isolationConfig), proxy.URL())
			envoy := rlsv3.NewRateLimitServiceClient(dial(t, s))
			req := &rlsv3.RateLimitRequest{Domain: "victims", Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("api", "shared")}}
			ask := func(d time.Duration) (time.Duration, error) {
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				start := time.Now()
				_, err := envoy.ShouldRateLimit(ctx, req)
				return time.Since(start), err
			}
			if _, err := ask(time.Second); err != nil {
				t.Fatalf("before the hang: %v", err)
			}
			proxy.Stall()
			defer proxy.Resume()
			var wg sync.WaitGroup
			var opened atomic.Bool
			for range 4 {
				wg.Go(func() {
					until := time.Now().Add(10 * time.Second)
					for !opened.Load() && time.Now().Before(until) {
						if _, err := ask(d); status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "circuit open") {
							opened.Store(true)
						}
					}
				})
			}
			wg.Wait()
			if !opened.Load() {
				t.Fatalf("callers with %v deadlines on a hung Redis never saw the circuit open", d)
			}
			// Open: answered at once, not at the deadline.
			if took, err := ask(time.Second); status.Code(err) != codes.Unavailable || took > 500*time.Millisecond {
				t.Errorf("with the circuit open: %v after %v, want Unavailable at once", err, took)
			}
			series, _ := scrape(t, s)
			if series["sluice_circuit_opens_total{}"] < 1 {
				t.Errorf("sluice_circuit_opens_total = %v, want at least 1", series["sluice_circuit_opens_total{}"])
			}
			proxy.Resume()
			until := time.Now().Add(5 * time.Second)
			for {
				_, err := ask(time.Second)
				if err == nil {
					break
				}
				if time.Now().After(until) {
					t.Fatalf("Redis answers again, calls still fail: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
