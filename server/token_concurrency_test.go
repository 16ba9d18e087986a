package server_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// TestConcurrentReservationsThroughTwoReplicas runs 50 callers that reserve
// and report through two sluice replicas on one Redis, against a 5000-token
// limit per minute (the whole test fits in one window).
//
// Sluice never admits a reservation that would take the count past the
// limit, so the count can exceed it only by what reports brought in beyond
// their estimates: at every observation, used <= limit + the sum of
// (actual - estimate) over reports sent before it. With accurate estimates
// that sum is zero and the count never exceeds the limit. At the end the
// count is exactly the sum of the reported usage.
func TestConcurrentReservationsThroughTwoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	for _, tc := range []struct {
		name     string
		api      string
		overshot func(r *rand.Rand) uint64 // actual - estimate of one call
	}{
		{"accurate estimates", "accurate", func(*rand.Rand) uint64 { return 0 }},
		{"actual above estimate", "above", func(r *rand.Rand) uint64 { return uint64(r.IntN(40)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runReservationLoad(t, tc.api, tc.overshot)
		})
	}
}

func runReservationLoad(t *testing.T, api string, overshot func(*rand.Rand) uint64) {
	const (
		limit   = 5000
		callers = 50
		runFor  = 2 * time.Second
	)
	cfg := writeConfig(t, `
domain: ai
descriptors:
  - key: api
    descriptors:
      - key: environment
        value: production
        token_limit: {window: 1m, total_tokens: 5000}
`)
	rs := redistest.New(t)
	clients := []sluicev1.RateLimitServiceClient{
		sluicev1.NewRateLimitServiceClient(dial(t, startSluice(t, cfg, rs.URL()))),
		sluicev1.NewRateLimitServiceClient(dial(t, startSluice(t, cfg, rs.URL()))),
	}
	type report struct {
		sent      time.Time
		overshoot uint64
	}
	var (
		mu                    sync.Mutex
		reports               []report
		reported              uint64 // sum of actual usage reported
		admitted, refused     int
		failures              []error
		wg                    sync.WaitGroup
		observations          int
		worstExcess, worstCap int64
	)
	fail := func(err error) { mu.Lock(); failures = append(failures, err); mu.Unlock() }
	stop := time.Now().Add(runFor)
	ctx := context.Background()
	for c := range callers {
		client := clients[c%2]
		rng := rand.New(rand.NewPCG(uint64(c), 7))
		wg.Go(func() {
			for time.Now().Before(stop) {
				p, q := uint64(10+rng.IntN(60)), uint64(10+rng.IntN(60))
				resp, err := client.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{
					Domain: "ai", Descriptors: aiDescriptors(api, "production"),
					UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: p, CompletionTokens: q},
				})
				if err != nil {
					fail(err)
					return
				}
				if resp.OverallCode != sluicev1.Code_OK {
					mu.Lock()
					refused++
					mu.Unlock()
					continue
				}
				extra := overshot(rng)
				mu.Lock()
				admitted++
				reports = append(reports, report{time.Now(), extra})
				reported += p + q + extra
				mu.Unlock()
				_, err = client.ReportUsage(ctx, &sluicev1.ReportUsageRequest{
					ReservationId: resp.ReservationId, Usage: &sluicev1.Usage{PromptTokens: p, CompletionTokens: q + extra},
				})
				if err != nil {
					fail(err)
					return
				}
			}
		})
	}
	// The observer: GetUsage against the bound, as long as the callers run.
	observe := func() {
		resp, err := clients[0].GetUsage(ctx, &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: aiDescriptors(api, "production")})
		if err != nil {
			fail(err)
			return
		}
		seen := time.Now()
		used := int64(resp.Descriptors[0].Limits[0].Used)
		mu.Lock()
		defer mu.Unlock()
		var allowance int64
		for _, r := range reports {
			if r.sent.Before(seen) {
				allowance += int64(r.overshoot)
			}
		}
		observations++
		if excess := used - limit; excess > allowance && excess-allowance > worstExcess-worstCap {
			worstExcess, worstCap = excess, allowance
		}
	}
	for time.Now().Before(stop) {
		observe()
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	observe()

	if len(failures) > 0 {
		t.Fatalf("%d calls failed, first: %v", len(failures), failures[0])
	}
	if worstExcess > 0 {
		t.Fatalf("used exceeded the limit by %d with only %d of overshoot reported", worstExcess, worstCap)
	}
	if refused == 0 {
		t.Fatalf("admitted %d, refused none: the load never reached the limit", admitted)
	}
	resp, err := clients[1].GetUsage(ctx, &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: aiDescriptors(api, "production")})
	if err != nil {
		t.Fatal(err)
	}
	final := resp.Descriptors[0].Limits[0]
	if final.Used != reported || final.Reserved != 0 {
		t.Errorf("final count %d (reserved %d), want exactly the %d tokens reported (none reserved)", final.Used, final.Reserved, reported)
	}
	t.Logf("%d admitted, %d refused, %d observations, final count %d of %d", admitted, refused, observations, final.Used, limit)
}
