package xds_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/internal/xdstest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/xds"
)

// TestSluiceTakesItsConfigOverXDS runs a real Sluice, on a real Redis, whose
// config comes from an xDS management server built from go-control-plane,
// as Envoy Gateway pushes one: not ready until the first push; a push is
// enforced; a new version replaces it keeping the counters when only the
// numbers change, as a file reload does; a bad push is NACKed and the old
// config stays in force; and after the server restarts the client comes
// back and takes the newer snapshot.
func TestSluiceTakesItsConfigOverXDS(t *testing.T) {
	const node = "sluice-test"
	rs := redistest.New(t)
	cp := xdstest.Start(t, "127.0.0.1:0", nil) // no snapshot for the node yet
	client, err := xds.New(xds.Options{Server: cp.Addr, NodeID: node, Backoff: fastBackoff, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	s := sluicetest.Start(t, server.Config{ConfigSource: client, RedisURL: rs.URL(), ReadinessInterval: 50 * time.Millisecond, KeyPrefix: "xds-test:"})
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	envoy := rlsv3.NewRateLimitServiceClient(conn)
	health := healthpb.NewHealthClient(conn)

	// Not ready: connected to the server, which has nothing for the node.
	cp.WaitRequest(t, 0, "the first request", func(*discoveryv3.DiscoveryRequest) bool { return true })
	if code, body := s.Readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "no config received yet") {
		t.Fatalf("before the first config: /readyz %d %q", code, body)
	}
	if h, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "ratelimit"}); err != nil || h.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("before the first config: gRPC health %v %v", h, err)
	}

	call := func() *rlsv3.RateLimitResponse {
		t.Helper()
		resp, err := envoy.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "gateway", HitsAddend: 1,
			Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{{Key: "api", Value: "pizza"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// admits calls exactly n more times, then refuses, and checks the limit.
	admits := func(n int, limit uint32) {
		t.Helper()
		for i := range n + 1 {
			resp := call()
			want := rlsv3.RateLimitResponse_OK
			if i == n {
				want = rlsv3.RateLimitResponse_OVER_LIMIT
			}
			if resp.OverallCode != want || resp.Statuses[0].GetCurrentLimit().GetRequestsPerUnit() != limit {
				t.Fatalf("call %d of %d: %v (want %v, limit %d)", i+1, n+1, resp, want, limit)
			}
		}
	}
	gateway := func(n uint32) *rlsconfv3.RateLimitConfig {
		return limited("gateway", "gateway", "api", "pizza", n, rlsconfv3.RateLimitUnit_MINUTE)
	}

	// The first push: enforced, and the service turns ready.
	cp.Push(t, node, "1", gateway(3))
	_, at := cp.WaitRequest(t, 0, "ACK of 1", xdstest.IsACK("1"))
	sluicetest.WaitReady(t, http.DefaultClient, "http://"+s.HTTPAddr()+"/readyz", true)
	if h, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("after the first config: gRPC health %v %v", h, err)
	}
	admits(3, 3)

	// A new version with a higher number replaces it and keeps the count:
	// 3 of 5 are used, 2 remain.
	cp.Push(t, node, "2", gateway(5))
	_, at = cp.WaitRequest(t, at+1, "ACK of 2", xdstest.IsACK("2"))
	admits(2, 5)

	// A bad push is NACKed, keeping version 2, and version 2 stays in force.
	cp.Push(t, node, "3", &rlsconfv3.RateLimitConfig{Name: "gateway", Domain: "gateway", Descriptors: []*rlsconfv3.RateLimitDescriptor{
		{Key: "api", Value: "pizza", RateLimit: &rlsconfv3.RateLimitPolicy{RequestsPerUnit: 100}}, // no unit
	}})
	nack, _ := cp.WaitRequest(t, at+1, "NACK keeping 2", xdstest.IsNACK("2"))
	if msg := nack.GetErrorDetail().GetMessage(); !strings.Contains(msg, "xds:gateway: descriptors[0].rate_limit.unit: missing") {
		t.Errorf("NACK says %q", msg)
	}
	admits(0, 5)

	// The management server goes away: the config stays, and so does readiness.
	cp.Stop()
	admits(0, 5)
	if code, body := s.Readyz(t); code != http.StatusOK {
		t.Errorf("with the management server down: /readyz %d %q", code, body)
	}

	// Another comes up on the same address with a newer snapshot: the client
	// reconnects, asks for version 2 (the one it applied), and takes version 4.
	cp2 := xdstest.Start(t, cp.Addr, nil)
	cp2.Push(t, node, "4", gateway(7))
	resume, _ := cp2.WaitRequest(t, 0, "resuming request", func(*discoveryv3.DiscoveryRequest) bool { return true })
	if resume.GetVersionInfo() != "2" || resume.GetNode().GetId() != node {
		t.Errorf("resuming request: %v", resume)
	}
	cp2.WaitRequest(t, 0, "ACK of 4", xdstest.IsACK("4"))
	admits(2, 7)
}

// TestXDSPushKeepsTheRuntimeLimitsLaidOverIt: a runtime limit set on the
// admin port wins at its path over the pushed config, and a new push
// changes everything else but not that, as a file reload does.
func TestXDSPushKeepsTheRuntimeLimitsLaidOverIt(t *testing.T) {
	const node = "sluice-test"
	rs := redistest.New(t)
	cp := xdstest.Start(t, "127.0.0.1:0", nil)
	client, err := xds.New(xds.Options{Server: cp.Addr, NodeID: node, Backoff: fastBackoff, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	s := sluicetest.Start(t, server.Config{ConfigSource: client, RedisURL: rs.URL(), ReadinessInterval: 50 * time.Millisecond,
		RuntimePollInterval: 50 * time.Millisecond, AdminAddr: "127.0.0.1:0", KeyPrefix: "xds-runtime-test:"})
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sluice := sluicev1.NewRateLimitServiceClient(conn)
	apim := func(production, sandbox uint32) *rlsconfv3.RateLimitConfig {
		env := func(value string, n uint32) *rlsconfv3.RateLimitDescriptor {
			return &rlsconfv3.RateLimitDescriptor{Key: "environment", Value: value, RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_MINUTE, RequestsPerUnit: n}}
		}
		return &rlsconfv3.RateLimitConfig{Name: "apim", Domain: "apim", Descriptors: []*rlsconfv3.RateLimitDescriptor{{
			Key: "api", Value: "PizzaShackAPI:1.0.0", Descriptors: []*rlsconfv3.RateLimitDescriptor{env("production", production), env("sandbox", sandbox)},
		}}}
	}
	// limitOf waits up to 5s for environment's limit to read want.
	limitOf := func(environment string, want uint64) {
		t.Helper()
		req := &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{
			{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: environment}}}}}
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := sluice.GetUsage(context.Background(), req)
			if err == nil && len(resp.Descriptors[0].Limits) == 1 && resp.Descriptors[0].Limits[0].Limit.RequestsPerUnit == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never read %d: %v %v", environment, want, resp, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	cp.Push(t, node, "1", apim(100, 10))
	sluicetest.WaitReady(t, http.DefaultClient, "http://"+s.HTTPAddr()+"/readyz", true)
	limitOf("sandbox", 10)
	req, err := http.NewRequest("PUT", "http://"+s.AdminAddr()+"/v1/domains/apim/apis/PizzaShackAPI:1.0.0/backend-throughput",
		strings.NewReader(`{"sandbox": {"requests": 30, "window": "1m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	limitOf("sandbox", 30)

	cp.Push(t, node, "2", apim(200, 20))
	cp.WaitRequest(t, 0, "ACK of 2", xdstest.IsACK("2"))
	limitOf("production", 200)
	limitOf("sandbox", 30)
}
