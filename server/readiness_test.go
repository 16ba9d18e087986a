package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// waitReadyz polls /readyz until its status is want and its body contains
// says. (A loaded machine may make a probe miss its short test timeout now
// and then: that answer is not the one waited for.)
func waitReadyz(t *testing.T, s *sluice, want int, says string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := s.Readyz(t)
		if code == want && strings.Contains(body, says) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d %q for 10 s, want %d saying %q", code, body, want, says)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadinessFollowsScriptsNotPing: a Redis full to its maxmemory under
// noeviction still answers PING, but refuses every script a call makes.
// Readiness follows the calls: /readyz 503 naming the OOM, gRPC health
// NOT_SERVING; once memory is freed, ready again and calls succeed.
func TestReadinessFollowsScriptsNotPing(t *testing.T) {
	rs := redistest.New(t, redistest.WithArgs("--maxmemory-policy", "noeviction"))
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	conn := dial(t, s)
	client := sluicev1.NewRateLimitServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	if _, err := client.ShouldRateLimit(ctx, sandboxRequest()); err != nil {
		t.Fatalf("before Redis is full: %v", err)
	}

	// Fill Redis: 2 MB of data, then a maxmemory of 1 MB.
	rdb := redistest.Client(t, rs)
	if err := rdb.Set(ctx, "ballast", strings.Repeat("x", 2<<20), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1mb").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("a full Redis still answers PING: %v", err)
	}
	if _, err := client.ShouldRateLimit(ctx, sandboxRequest()); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("a call on a full Redis: %v, want Unavailable naming the OOM", err)
	}
	waitReadyz(t, s, http.StatusServiceUnavailable, "OOM")
	if resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health on a full Redis: %v %v, want NOT_SERVING", resp, err)
	}

	// Free the memory: ready again, and calls are answered.
	if err := rdb.Del(ctx, "ballast").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, s, http.StatusOK, "ok")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gRPC health once memory is free: %v %v, want SERVING", resp, err)
		}
	}
	if _, err := client.ShouldRateLimit(ctx, sandboxRequest()); err != nil {
		t.Fatalf("a call once memory is free: %v", err)
	}
}
