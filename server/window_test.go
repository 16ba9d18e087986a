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

	admitted, refused := hammer(t, callers, runFor, func(ctx context.Context, caller int) (bool, error) {
		resp, err := clients[caller%2].ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{
			Domain: "apim", Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("api", "ChatAPI:1.0.0")},
		})
		return err == nil && resp.OverallCode == rlsv3.RateLimitResponse_OK, err
	})
	if n, at := mostInOneWindow(admitted, window); n > limit {
		t.Fatalf("%d calls admitted within %v of the call sent at %v; the limit is %d", n, window, at, limit)
	}
	perWindow := float64(len(admitted)) / (float64(runFor) / float64(window))
	t.Logf("admitted %d, refused %d in %v: %.1f per %v window under %dx overload (limit %d)",
		len(admitted), refused, runFor, perWindow, window, (len(admitted)+refused)/len(admitted), limit)
}

// hammer runs callers goroutines, each calling call again and again for
// runFor, and returns the admitted calls sorted by when they were sent, and
// how many were refused. A call that fails fails the test.
func hammer(t *testing.T, callers int, runFor time.Duration, call func(ctx context.Context, caller int) (admitted bool, err error)) ([]admission, int) {
	t.Helper()
	var (
		mu       sync.Mutex
		admitted []admission
		refused  int
		failures int
		firstErr error
		wg       sync.WaitGroup
	)
	stop := time.Now().Add(runFor)
	for c := range callers {
		wg.Go(func() {
			for time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				sent := time.Now()
				ok, err := call(ctx, c)
				received := time.Now()
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					failures++
					firstErr = err
				case ok:
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
		t.Fatalf("%d calls failed, e.g. %v", failures, firstErr)
	}
	if refused == 0 || len(admitted) == 0 {
		t.Fatalf("admitted %d refused %d: the load never reached the limit", len(admitted), refused)
	}
	sort.Slice(admitted, func(i, j int) bool { return admitted[i].sent.Before(admitted[j].sent) })
	return admitted, refused
}

// mostInOneWindow is the largest number of admitted calls (sorted by sent)
// that certainly fell within one window, and when the first of them was
// sent. A set of calls certainly fell within one window when the last one's
// answer came back less than window after the first one was sent.
func mostInOneWindow(admitted []admission, window time.Duration) (most int, at time.Time) {
	for i := range admitted {
		n := 0
		for j := i; j < len(admitted); j++ {
			if admitted[j].received.Sub(admitted[i].sent) < window {
				n++
			}
		}
		if n > most {
			most, at = n, admitted[i].sent
		}
	}
	return most, at
}
