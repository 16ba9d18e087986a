package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/overlay"
)

var sandboxPath = []config.Entry{{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "sandbox"}}

// sandboxCap returns the (first) sandbox limit a replica decides with, and
// what it has left.
func sandboxCap(t *testing.T, client sluicev1.RateLimitServiceClient) (limit, remaining uint64) {
	t.Helper()
	resp, err := client.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: sandboxRequest().Descriptors})
	if err != nil {
		t.Fatalf("GetUsage: %v", err)
	}
	if len(resp.Descriptors[0].Limits) == 0 {
		t.Fatalf("sandbox limits %v", resp.Descriptors[0].Limits)
	}
	l := resp.Descriptors[0].Limits[0]
	return l.Limit.RequestsPerUnit, l.Remaining
}

// waitSandboxCap polls a replica until its sandbox limit is want, for up to
// within, and returns how long that took.
func waitSandboxCap(t *testing.T, client sluicev1.RateLimitServiceClient, want uint64, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if got, _ := sandboxCap(t, client); got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			got, _ := sandboxCap(t, client)
			t.Fatalf("sandbox cap is %d after %v, want %d", got, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRuntimeLimitOnTwoReplicas writes runtime limits into the Redis two
// replicas share and checks that both enforce them, that the count goes on
// when only the number changes, that a delete falls back to the file, and
// that a replica started later decides with them from its first call.
func TestRuntimeLimitOnTwoReplicas(t *testing.T) {
	rs := redistest.New(t)
	path := writeConfig(t, apimConfig) // sandbox: 10 a minute
	a := startSluice(t, path, rs.URL())
	b := startSluice(t, path, rs.URL())
	ca := sluicev1.NewRateLimitServiceClient(dial(t, a))
	cb := sluicev1.NewRateLimitServiceClient(dial(t, b))
	store := overlay.NewStore(redistest.Client(t, rs), "sluice:")
	ctx := context.Background()

	for range 2 { // charge 2 of the file's 10
		if resp, err := ca.ShouldRateLimit(ctx, sandboxRequest()); err != nil || resp.OverallCode != sluicev1.Code_OK {
			t.Fatalf("call: %v %v", resp, err)
		}
	}
	// Same unit, another number: the limit keeps its counter.
	lim := &sluicev1.RuntimeLimit{RateLimit: &sluicev1.RequestLimit{Unit: proto.String("minute"), RequestsPerUnit: proto.Int64(3)}}
	if _, err := store.Write(ctx, overlay.Actor{Who: "test"}, []overlay.Change{{Domain: "apim", Path: sandboxPath, Limit: lim}}); err != nil {
		t.Fatal(err)
	}
	took := waitSandboxCap(t, cb, 3, time.Second)
	t.Logf("the other replica applied the runtime limit after %v", took)
	waitSandboxCap(t, ca, 3, time.Second)
	if _, remaining := sandboxCap(t, cb); remaining != 1 {
		t.Errorf("remaining %d after 2 calls under a cap of 3: the count was not kept", remaining)
	}
	if resp, err := cb.ShouldRateLimit(ctx, sandboxRequest()); err != nil || resp.OverallCode != sluicev1.Code_OK {
		t.Fatalf("third call: %v %v", resp, err)
	}
	if resp, err := cb.ShouldRateLimit(ctx, sandboxRequest()); err != nil || resp.OverallCode != sluicev1.Code_OVER_LIMIT {
		t.Fatalf("fourth call under a runtime cap of 3: %v %v", resp, err)
	}

	// A replica that starts now has the runtime limit from its first call.
	c := startSluice(t, path, rs.URL())
	cc := sluicev1.NewRateLimitServiceClient(dial(t, c))
	if got, _ := sandboxCap(t, cc); got != 3 {
		t.Errorf("a replica started later decides with %d, want the runtime 3", got)
	}

	if _, err := store.Write(ctx, overlay.Actor{Who: "test"}, []overlay.Change{{Domain: "apim", Path: sandboxPath, MustExist: true}}); err != nil {
		t.Fatal(err)
	}
	for _, client := range []sluicev1.RateLimitServiceClient{ca, cb, cc} {
		waitSandboxCap(t, client, 10, time.Second)
	}
}
