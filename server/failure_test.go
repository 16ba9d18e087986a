package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

func sandboxRequest() *sluicev1.ShouldRateLimitRequest {
	return &sluicev1.ShouldRateLimitRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{
		{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "sandbox"},
	}}}}
}

func TestRedisDownIsUnavailableWithinTheDeadlineAndRecovers(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	conn := dial(t, s)
	client := sluicev1.NewRateLimitServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	if _, err := client.ShouldRateLimit(context.Background(), sandboxRequest()); err != nil {
		t.Fatalf("with Redis up: %v", err)
	}
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}

	for _, deadline := range []time.Duration{200 * time.Millisecond, 0} {
		ctx := context.Background()
		if deadline > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, deadline)
			defer cancel()
		}
		start := time.Now()
		_, err := client.ShouldRateLimit(ctx, sandboxRequest())
		took := time.Since(start)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("deadline %v: %v, want Unavailable", deadline, err)
		}
		limit := deadline
		if limit == 0 {
			limit = time.Second // the service's default deadline
		}
		if took > limit {
			t.Errorf("deadline %v: answered after %v", deadline, took)
		}
	}
	code, _ := postJSON(t, s, "/v1/ratelimit:check", sandboxCheck("apim"))
	if code != http.StatusServiceUnavailable {
		t.Errorf("HTTP with Redis down: %d, want 503", code)
	}
	waitReady(t, s, false)
	if resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health with Redis down: %v %v, want NOT_SERVING", resp, err)
	}

	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s, true)
	resp, err := client.ShouldRateLimit(context.Background(), sandboxRequest())
	if err != nil || resp.OverallCode != sluicev1.Code_OK {
		t.Fatalf("after Redis came back: %v %v", resp, err)
	}
	if got := resp.Statuses[0].LimitRemaining; got != 9 {
		t.Errorf("remaining %d after a restart that kept nothing, want 9", got)
	}
	if resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health after recovery: %v %v, want SERVING", resp, err)
	}
}

// TestShutdownDrainsCallsInFlight holds a call inside Redis (DEBUG SLEEP),
// stops the server meanwhile, and expects the call to be answered and Run to
// return nil.
func TestShutdownDrainsCallsInFlight(t *testing.T) {
	rs := redistest.New(t, redistest.WithArgs("--enable-debug-command", "yes"))
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	client := sluicev1.NewRateLimitServiceClient(dial(t, s))
	blocker := redistest.Client(t, rs)
	slept := make(chan error, 1)
	go func() { slept <- blocker.Do(context.Background(), "DEBUG", "SLEEP", "0.4").Err() }()
	time.Sleep(50 * time.Millisecond)

	answered := make(chan error, 1)
	go func() {
		resp, err := client.ShouldRateLimit(context.Background(), sandboxRequest())
		if err == nil && resp.OverallCode != sluicev1.Code_OK {
			err = status.Errorf(codes.Internal, "answer %v", resp.OverallCode)
		}
		answered <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := s.Stop(); err != nil {
		t.Errorf("Run after drain: %v, want nil", err)
	}
	if err := <-answered; err != nil {
		t.Errorf("call in flight at shutdown: %v", err)
	}
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
}
