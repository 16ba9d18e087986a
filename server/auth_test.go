package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// authConfig has a request limit, a token limit for Envoy's token flow and
// one for sluice.v1 reservations.
const authConfig = `
domain: ai
descriptors:
  - key: api
    descriptors:
      - key: environment
        value: production
        rate_limit: {unit: minute, requests_per_unit: 100}
        token_limit: {window: 1m, total_tokens: 1000}
  - key: model
    token_limit: {window: 1m, total_tokens: 1000}
  - key: plain
    rate_limit: {unit: minute, requests_per_unit: 5}
`

const (
	fullToken   = "full-token-0123456789"
	decideToken = "decide-token-0123456789"
)

// authSluice is a server with both tokens, and clients for every kind of
// caller.
type authSluice struct {
	*sluice
	native sluicev1.RateLimitServiceClient
	envoy  rlsv3.RateLimitServiceClient
}

func startAuthSluice(t *testing.T) *authSluice {
	t.Helper()
	rs := redistest.New(t)
	s := startSluiceWith(t, server.Config{ConfigPath: writeConfig(t, authConfig), RedisURL: rs.URL(), AuthToken: fullToken, DecideToken: decideToken})
	conn := dial(t, s)
	return &authSluice{sluice: s, native: sluicev1.NewRateLimitServiceClient(conn), envoy: rlsv3.NewRateLimitServiceClient(conn)}
}

func bearer(token string) context.Context {
	ctx := context.Background()
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// used reads, with the full token, what a descriptor's first limit counts.
func (a *authSluice) used(t *testing.T, entries ...string) uint64 {
	t.Helper()
	d := &sluicev1.Descriptor{}
	for i := 0; i+1 < len(entries); i += 2 {
		d.Entries = append(d.Entries, &sluicev1.Entry{Key: entries[i], Value: entries[i+1]})
	}
	resp, err := a.native.GetUsage(bearer(fullToken), &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: []*sluicev1.Descriptor{d}})
	if err != nil {
		t.Fatalf("GetUsage with the full token: %v", err)
	}
	if len(resp.Descriptors[0].Limits) == 0 {
		t.Fatalf("GetUsage %v: no limit", entries)
	}
	return resp.Descriptors[0].Limits[0].Used
}

func envoyCall(hits uint32, descs ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitRequest {
	return &rlsv3.RateLimitRequest{Domain: "ai", Descriptors: descs, HitsAddend: hits}
}

// TestAuthCoversEveryCallThatSpendsOrReadsQuota: with a token configured,
// every data-plane gRPC method needs it — Envoy's ShouldRateLimit and
// sluice.v1's ShouldRateLimit, GetUsage and ReportUsage — and a refused call
// charges nothing; health stays open.
func TestAuthCoversEveryCallThatSpendsOrReadsQuota(t *testing.T) {
	a := startAuthSluice(t)
	for _, token := range []string{"", "wrong-token"} {
		ctx := bearer(token)
		_, err := a.envoy.ShouldRateLimit(ctx, envoyCall(1, envoyDesc("plain", "a")))
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("Envoy ShouldRateLimit with token %q: %v, want Unauthenticated", token, err)
		}
		// The refund: 1e9 negative hits on a counter that has used some.
		neg := envoyDesc("model", "gpt")
		neg.IsNegativeHits = true
		if _, err := a.envoy.ShouldRateLimit(ctx, envoyCall(1_000_000_000, neg)); status.Code(err) != codes.Unauthenticated {
			t.Errorf("Envoy refund with token %q: %v, want Unauthenticated", token, err)
		}
		_, err = a.native.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{Domain: "ai", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "plain", Value: "a"}}}}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("sluice.v1 ShouldRateLimit with token %q: %v, want Unauthenticated", token, err)
		}
		_, err = a.native.GetUsage(ctx, &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "plain", Value: "a"}}}}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("GetUsage with token %q: %v, want Unauthenticated", token, err)
		}
		_, err = a.native.ReportUsage(ctx, &sluicev1.ReportUsageRequest{Domain: "ai", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "model", Value: "gpt"}}}},
			Usage: &sluicev1.Usage{TotalTokens: 10}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("ReportUsage with token %q: %v, want Unauthenticated", token, err)
		}
	}
	if used := a.used(t, "plain", "a"); used != 0 {
		t.Errorf("refused calls charged plain=a %d, want 0", used)
	}
	if used := a.used(t, "model", "gpt"); used != 0 {
		t.Errorf("refused calls charged model=gpt %d, want 0", used)
	}
	hc := healthpb.NewHealthClient(dial(t, a.sluice))
	if resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health without a token: %v %v, want SERVING", resp, err)
	}
	// The full token may do everything.
	if resp, err := a.envoy.ShouldRateLimit(bearer(fullToken), envoyCall(1, envoyDesc("plain", "a"))); err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Errorf("Envoy ShouldRateLimit with the full token: %v %v", resp, err)
	}
	if used := a.used(t, "plain", "a"); used != 1 {
		t.Errorf("plain=a used %d after one call with the token, want 1", used)
	}
}

// TestDecideTokenNeverRefundsForcesOrOverrides: the decide-only token asks
// and reads, within the limits; it can never give quota back, charge past a
// limit or replace one — and a call refused for that charges nothing.
func TestDecideTokenNeverRefundsForcesOrOverrides(t *testing.T) {
	a := startAuthSluice(t)
	full, decide := bearer(fullToken), bearer(decideToken)

	// Allowed: Envoy checks and charges of request limits, token checks
	// (hits 0), sluice.v1 reservations and usage reads.
	if resp, err := a.envoy.ShouldRateLimit(decide, envoyCall(2, envoyDesc("plain", "d"))); err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("Envoy ShouldRateLimit with the decide token: %v %v", resp, err)
	}
	tokenCheck := envoyDesc("model", "gpt")
	tokenCheck.HitsAddend = wrapperspb.UInt64(0) // Envoy's hits_addend: {number: 0}
	if resp, err := a.envoy.ShouldRateLimit(decide, envoyCall(0, tokenCheck)); err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OK {
		t.Fatalf("Envoy token check (hits 0) with the decide token: %v %v", resp, err)
	}
	res, err := a.native.ShouldRateLimit(decide, &sluicev1.ShouldRateLimitRequest{Domain: "ai",
		Descriptors:   []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "api", Value: "chat"}, {Key: "environment", Value: "production"}}}},
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 10, CompletionTokens: 20}})
	if err != nil || res.ReservationId == "" {
		t.Fatalf("sluice.v1 reservation with the decide token: %v %v", res, err)
	}
	if used := a.used(t, "plain", "d"); used != 2 {
		t.Fatalf("plain=d used %d, want 2", used)
	}
	if _, err := a.envoy.ShouldRateLimit(full, envoyCall(100, envoyDesc("model", "gpt"))); err != nil {
		t.Fatalf("Envoy token hits with the full token: %v", err)
	}

	neg := envoyDesc("plain", "d")
	neg.IsNegativeHits = true
	negTokens := envoyDesc("model", "gpt")
	negTokens.IsNegativeHits = true
	override := envoyDesc("plain", "d")
	override.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 1_000_000, Unit: typev3.RateLimitUnit_SECOND}
	perDescriptorHits := envoyDesc("model", "gpt")
	perDescriptorHits.HitsAddend = wrapperspb.UInt64(50)
	for _, c := range []struct {
		name  string
		req   *rlsv3.RateLimitRequest
		field string
	}{
		{"refund of a request limit", envoyCall(2, neg), "descriptors[0].is_negative_hits"},
		{"refund of tokens", envoyCall(100, negTokens), "descriptors[0].is_negative_hits"},
		{"limit override", envoyCall(1, envoyDesc("plain", "d"), override), "descriptors[1].limit"},
		{"token hits on a token limit", envoyCall(50, envoyDesc("model", "gpt")), "descriptors[0].hits_addend"},
		{"per-descriptor token hits", envoyCall(0, envoyDesc("plain", "d"), perDescriptorHits), "descriptors[1].hits_addend"},
	} {
		_, err := a.envoy.ShouldRateLimit(decide, c.req)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), c.field) {
			t.Errorf("%s with the decide token: %v, want PermissionDenied naming %s", c.name, err, c.field)
		}
	}
	if _, err := a.native.ReportUsage(decide, &sluicev1.ReportUsageRequest{ReservationId: res.ReservationId, Usage: &sluicev1.Usage{PromptTokens: 1}}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ReportUsage with the decide token: %v, want PermissionDenied", err)
	}
	if used := a.used(t, "plain", "d"); used != 2 {
		t.Errorf("plain=d used %d after the refused calls, want 2 (nothing charged, nothing refunded)", used)
	}
	if used := a.used(t, "model", "gpt"); used != 100 {
		t.Errorf("model=gpt used %d after the refused calls, want 100", used)
	}
	// The full token may.
	if _, err := a.native.ReportUsage(full, &sluicev1.ReportUsageRequest{ReservationId: res.ReservationId, Usage: &sluicev1.Usage{PromptTokens: 1}}); err != nil {
		t.Errorf("ReportUsage with the full token: %v", err)
	}
	if _, err := a.envoy.ShouldRateLimit(full, envoyCall(2, neg)); err != nil {
		t.Errorf("Envoy refund with the full token: %v", err)
	}
	if used := a.used(t, "plain", "d"); used != 0 {
		t.Errorf("plain=d used %d after the full token's refund, want 0", used)
	}
}

// TestHTTPAuthFollowsTheSamePolicy: the JSON API (/v1 and Envoy's /json)
// answers as gRPC does: 401 without a valid token, 403 when the decide
// token asks for what only the full token may do.
func TestHTTPAuthFollowsTheSamePolicy(t *testing.T) {
	a := startAuthSluice(t)
	post := func(path, token, body string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.HTTPAddr()+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	check := `{"domain":"ai","descriptors":[{"entries":[{"key":"plain","value":"h"}]}]}`
	refund := `{"domain":"ai","hits_addend":1,"descriptors":[{"entries":[{"key":"plain","value":"h"}],"is_negative_hits":true}]}`
	report := `{"domain":"ai","descriptors":[{"entries":[{"key":"model","value":"h"}]}],"usage":{"total_tokens":5}}`
	for _, c := range []struct {
		path, token, body string
		want              int
	}{
		{"/v1/ratelimit:check", "", check, http.StatusUnauthorized},
		{"/v1/usage:query", "", check, http.StatusUnauthorized},
		{"/json", "", check, http.StatusUnauthorized},
		{"/json", "wrong", check, http.StatusUnauthorized},
		{"/v1/ratelimit:check", decideToken, check, http.StatusOK},
		{"/v1/usage:query", decideToken, check, http.StatusOK},
		{"/json", decideToken, check, http.StatusOK},
		{"/json", decideToken, refund, http.StatusForbidden},
		{"/v1/usage:report", decideToken, report, http.StatusForbidden},
		{"/v1/usage:report", fullToken, report, http.StatusOK},
		{"/json", fullToken, refund, http.StatusOK},
	} {
		if got := post(c.path, c.token, c.body); got != c.want {
			t.Errorf("POST %s with token %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	if used := a.used(t, "plain", "h"); used != 1 {
		t.Errorf("plain=h used %d: two checks charged, the refused refund nothing, the full token's refund one; want 1", used)
	}
}
