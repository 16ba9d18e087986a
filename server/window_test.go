package server_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// admission is one admitted call: the true decision time lies between sent
// and received (client and Redis share this machine's clock).
type admission struct{ sent, received time.Time }

// TestTwoReplicasNeverAdmitMoreThanTheLimitInAnyWindow runs two sluice
// servers on one real Redis with 64 concurrent callers through Envoy's gRPC
// API against a 20-per-2s limit, and checks that no 2-second interval holds
// more than 20 admitted calls.
func TestTwoReplicasNeverAdmitMoreThanTheLimitInAnyWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	const (
		limit   = 20
		window  = 2 * time.Second
		callers = 64
		runFor  = 5 * time.Second
	)
	cfg := writeConfig(t, `
domain: apim
descriptors:
  - key: api
    value: ChatAPI:1.0.0
    rate_limit: {window: 2s, requests: 20}
`)
	rs := redistest.New(t)
	replicas := []*sluice{startSluice(t, cfg, rs.URL()), startSluice(t, cfg, rs.URL())}
	clients := []rlsv3.RateLimitServiceClient{
		rlsv3.NewRateLimitServiceClient(dial(t, replicas[0])),
		rlsv3.NewRateLimitServiceClient(dial(t, replicas[1])),
	}

	var (
		mu       sync.Mutex
		admitted []admission
		refused  int
		failures int
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(runFor)
	for c := range callers {
		client := clients[c%2]
		wg.Go(func() {
			for time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				sent := time.Now()
				resp, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{
					Domain: "apim", Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("api", "ChatAPI:1.0.0")},
				})
				received := time.Now()
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					failures++
				case resp.OverallCode == rlsv3.RateLimitResponse_OK:
					admitted = append(admitted, admission{sent, received})
				default:
					refused++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d calls failed", failures)
	}
	if refused == 0 || len(admitted) == 0 {
		t.Fatalf("admitted %d refused %d: the load never reached the limit", len(admitted), refused)
	}
	sort.Slice(admitted, func(i, j int) bool { return admitted[i].sent.Before(admitted[j].sent) })
	// A set of calls certainly fell within one window when the last one's
	// answer came back less than W after the first one was sent.
	for i := range admitted {
		n := 0
		for j := i; j < len(admitted); j++ {
			if admitted[j].received.Sub(admitted[i].sent) < window {
				n++
			}
		}
		if n > limit {
			t.Fatalf("%d calls admitted within %v of the call sent at %v; the limit is %d", n, window, admitted[i].sent, limit)
		}
	}
	perWindow := float64(len(admitted)) / (float64(runFor) / float64(window))
	t.Logf("admitted %d, refused %d in %v: %.1f per %v window under %dx overload (limit %d)",
		len(admitted), refused, runFor, perWindow, window, (len(admitted)+refused)/len(admitted), limit)
}
