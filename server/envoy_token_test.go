package server_test

import (
	"context"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// TestEnvoyTokenFlow is Envoy's two-call token flow through go-control-plane's
// client: the request path checks with hits_addend 0, the response path
// (apply_on_stream_done) charges the tokens used with hits_addend = tokens,
// recorded even past the limit, and is_negative_hits gives tokens back.
func TestEnvoyTokenFlow(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, `
domain: llm
descriptors:
  - key: model
    value: gpt-4o
    token_limit: {unit: minute, total_tokens: 100}
`), rs.URL())
	client := rlsv3.NewRateLimitServiceClient(dial(t, s))
	call := func(hits uint64, negative bool) *rlsv3.RateLimitResponse {
		t.Helper()
		d := envoyDesc("model", "gpt-4o")
		d.HitsAddend = wrapperspb.UInt64(hits)
		d.IsNegativeHits = negative
		resp, err := client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "llm", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		return resp
	}
	check := func() *rlsv3.RateLimitResponse { t.Helper(); return call(0, false) }

	for i, step := range []struct {
		name      string
		resp      func() *rlsv3.RateLimitResponse
		want      rlsv3.RateLimitResponse_Code
		remaining uint32
	}{
		{"request path: check only", check, rlsv3.RateLimitResponse_OK, 100},
		{"response path: 60 tokens used", func() *rlsv3.RateLimitResponse { return call(60, false) }, rlsv3.RateLimitResponse_OK, 40},
		{"request path: still below", check, rlsv3.RateLimitResponse_OK, 40},
		{"response path: 70 more, past the limit, recorded", func() *rlsv3.RateLimitResponse { return call(70, false) }, rlsv3.RateLimitResponse_OK, 0},
		{"request path: over", check, rlsv3.RateLimitResponse_OVER_LIMIT, 0},
		{"negative hits give 50 back", func() *rlsv3.RateLimitResponse { return call(50, true) }, rlsv3.RateLimitResponse_OK, 20},
		{"request path: below again", check, rlsv3.RateLimitResponse_OK, 20},
	} {
		resp := step.resp()
		if resp.OverallCode != step.want || resp.Statuses[0].LimitRemaining != step.remaining {
			t.Fatalf("step %d (%s): %v remaining %d, want %v remaining %d",
				i, step.name, resp.OverallCode, resp.Statuses[0].LimitRemaining, step.want, step.remaining)
		}
	}
}
