package server_test

import (
	"context"
	"strings"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// fiveConfig caps k=v at 5 a minute.
const fiveConfig = `
domain: nf
descriptors:
  - key: k
    value: v
    rate_limit: {unit: minute, requests_per_unit: 5}
`

// TestACostThatNeverFitsSaysWaitingWillNotHelp: a cost above the whole
// limit is OVER_LIMIT without a retry_after (or Retry-After, or Envoy's
// duration_until_reset) that would invite a retry loop, says why, and is
// counted; an ordinary refusal keeps its retry_after.
func TestACostThatNeverFitsSaysWaitingWillNotHelp(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, fiveConfig), rs.URL())
	conn := dial(t, s)
	native, envoy := sluicev1.NewRateLimitServiceClient(conn), rlsv3.NewRateLimitServiceClient(conn)
	ctx := context.Background()
	check := func(hits uint64) *sluicev1.ShouldRateLimitResponse {
		t.Helper()
		resp, err := native.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{
			Domain: "nf", HitsAddend: hits,
			Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "k", Value: "v"}}}},
		})
		if err != nil {
			t.Fatalf("ShouldRateLimit(hits %d): %v", hits, err)
		}
		return resp
	}
	retryAfterHeader := func(resp *sluicev1.ShouldRateLimitResponse) bool {
		for _, h := range resp.ResponseHeadersToAdd {
			if h.Key == "Retry-After" {
				return true
			}
		}
		return false
	}

	for _, used := range []uint64{0, 3} { // on an empty counter and on one in use
		if used > 0 {
			check(used)
		}
		resp := check(1_000_000_000)
		st := resp.Statuses[0]
		if resp.OverallCode != sluicev1.Code_OVER_LIMIT || st.Code != sluicev1.Code_OVER_LIMIT {
			t.Fatalf("used %d, hits 1e9 against 5: %v, want OVER_LIMIT", used, resp)
		}
		if st.RetryAfter != nil || retryAfterHeader(resp) {
			t.Errorf("used %d, hits 1e9 against 5: retry_after %v, headers %v; want neither: waiting will not help", used, st.RetryAfter, resp.ResponseHeadersToAdd)
		}
		if !st.NeverFits || !strings.Contains(st.Detail, "1000000000") || !strings.Contains(st.Detail, "never") {
			t.Errorf("used %d: never_fits %v detail %q, want true and a detail naming the cost", used, st.NeverFits, st.Detail)
		}
		if st.LimitRemaining != 5-used {
			t.Errorf("used %d: limit_remaining %d, want %d (nothing charged)", used, st.LimitRemaining, 5-used)
		}
	}
	// 3 used: a cost of 3 does not fit now but will.
	resp := check(3)
	if st := resp.Statuses[0]; resp.OverallCode != sluicev1.Code_OVER_LIMIT || st.RetryAfter == nil || st.RetryAfter.AsDuration() <= 0 || st.NeverFits || st.Detail != "" || !retryAfterHeader(resp) {
		t.Errorf("an ordinary refusal: %v, want retry_after > 0, Retry-After, never_fits false, no detail", resp)
	}

	envoyCheck := func(hits uint32) *rlsv3.RateLimitResponse_DescriptorStatus {
		t.Helper()
		resp, err := envoy.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "nf", HitsAddend: hits, Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("k", "v")}})
		if err != nil {
			t.Fatalf("Envoy ShouldRateLimit(hits %d): %v", hits, err)
		}
		if resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("Envoy hits %d: %v, want OVER_LIMIT", hits, resp)
		}
		return resp.Statuses[0]
	}
	if st := envoyCheck(1_000_000_000); st.DurationUntilReset != nil || st.CurrentLimit.GetRequestsPerUnit() != 5 {
		t.Errorf("Envoy, hits 1e9 against 5: %v, want the limit and no duration_until_reset", st)
	}
	if st := envoyCheck(3); st.DurationUntilReset == nil || st.DurationUntilReset.AsDuration() <= 0 {
		t.Errorf("Envoy, an ordinary refusal: %v, want duration_until_reset", st)
	}

	waitMetric(t, s, "sluice_never_fits_total{descriptor=nf.k_v,domain=nf,limit=r:1m:10}", 3)
}
