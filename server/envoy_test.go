package server_test

import (
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

func envoyDesc(kv ...string) *ratelimitv3.RateLimitDescriptor {
	d := &ratelimitv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// TestEnvoyClientWithAnUnmodifiedEnvoyConfig drives the service with
// go-control-plane's generated client, on a config file in
// envoyproxy/ratelimit's own format.
func TestEnvoyClientWithAnUnmodifiedEnvoyConfig(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, "testdata/envoy-ratelimit.yaml", rs.URL())
	client := rlsv3.NewRateLimitServiceClient(dial(t, s))
	ctx := context.Background()
	call := func(hits uint32, ds ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
		t.Helper()
		resp, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "edge_proxy_per_ip", Descriptors: ds, HitsAddend: hits})
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		return resp
	}

	t.Run("key-only descriptor counts each value", func(t *testing.T) {
		for range 10 {
			if r := call(0, envoyDesc("remote_address", "10.0.0.1")); r.OverallCode != rlsv3.RateLimitResponse_OK {
				t.Fatalf("under the cap: %v", r)
			}
		}
		r := call(0, envoyDesc("remote_address", "10.0.0.1"))
		if r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Fatalf("11th call on 10/s: %v", r)
		}
		// An unchanged upstream config answers as upstream: no body, no headers.
		if len(r.RawBody) != 0 || len(r.ResponseHeadersToAdd) != 0 {
			t.Errorf("raw_body %q, headers %v: want neither without over_limit_response", r.RawBody, r.ResponseHeadersToAdd)
		}
		st := r.Statuses[0]
		if st.CurrentLimit.GetRequestsPerUnit() != 10 || st.CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_SECOND {
			t.Errorf("current_limit %v, want 10 per SECOND", st.CurrentLimit)
		}
		if r := call(0, envoyDesc("remote_address", "10.0.0.2")); r.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Errorf("another address shares the counter: %v", r)
		}
	})
	t.Run("zero requests_per_unit blocks", func(t *testing.T) {
		if r := call(0, envoyDesc("remote_address", "50.0.0.5")); r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Errorf("black-listed address admitted: %v", r)
		}
	})
	t.Run("replaces", func(t *testing.T) {
		for range 5 {
			if r := call(0, envoyDesc("generic_key", "default"), envoyDesc("generic_key", "premium")); r.OverallCode != rlsv3.RateLimitResponse_OK {
				t.Fatalf("premium replaces generic (3/min) with 5/min: %v", r)
			}
		}
		if r := call(0, envoyDesc("generic_key", "default"), envoyDesc("generic_key", "premium")); r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Errorf("6th call on 5/min: %v", r)
		}
	})
	t.Run("wildcard", func(t *testing.T) {
		if r := call(4, envoyDesc("destination_cluster", "mock_a")); r.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Fatalf("4 hits on 4/min: %v", r)
		}
		if r := call(0, envoyDesc("destination_cluster", "mock_a")); r.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
			t.Errorf("5th hit on 4/min: %v", r)
		}
		if r := call(0, envoyDesc("destination_cluster", "mock_b")); r.OverallCode != rlsv3.RateLimitResponse_OK {
			t.Errorf("each wildcard value counts on its own: %v", r)
		}
	})
	t.Run("shadow mode and unlimited answer OK", func(t *testing.T) {
		for range 3 {
			r := call(0, envoyDesc("source_cluster", "proxy", "destination_cluster", "bar"), envoyDesc("source_cluster", "proxy", "destination_cluster", "internal"))
			if r.OverallCode != rlsv3.RateLimitResponse_OK || r.Statuses[0].Code != rlsv3.RateLimitResponse_OK {
				t.Fatalf("shadow/unlimited: %v", r)
			}
			if u := r.Statuses[1]; u.Code != rlsv3.RateLimitResponse_OK || u.LimitRemaining != math.MaxUint32 || u.CurrentLimit != nil {
				t.Fatalf("unlimited: %v, want OK with limit_remaining 4294967295 and no current_limit", u)
			}
		}
	})
	t.Run("per-descriptor hits_addend overrides the request's", func(t *testing.T) {
		d := envoyDesc("remote_address", "10.9.9.9")
		d.HitsAddend = wrapperspb.UInt64(10)
		if r := call(1, d); r.OverallCode != rlsv3.RateLimitResponse_OK || r.Statuses[0].LimitRemaining != 0 {
			t.Fatalf("10 hits on 10/s: %v", r)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		_, err := client.ShouldRateLimit(ctx, &rlsv3.RateLimitRequest{Domain: "edge_proxy_per_ip"})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("no descriptors: %v, want InvalidArgument", err)
		}
	})
}

func TestEnvoyJSONEndpoint(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	body := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}],"hitsAddend":10}`
	code, out := postJSON(t, s, "/json", body)
	if code != http.StatusOK || out["overallCode"] != "OK" {
		t.Fatalf("10 hits on 10/min: %d %v", code, out)
	}
	code, out = postJSON(t, s, "/json", body)
	if code != http.StatusTooManyRequests || out["overallCode"] != "OVER_LIMIT" {
		t.Fatalf("over limit: %d %v, want 429 OVER_LIMIT", code, out)
	}
}

// TestEnvoyAllOrNothing: a request refused by one limit charges none of the
// others, through Envoy's API on a real Redis.
func TestEnvoyAllOrNothing(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, "testdata/envoy-ratelimit.yaml", rs.URL())
	conn := dial(t, s)
	client := rlsv3.NewRateLimitServiceClient(conn)
	resp, err := client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{
		Domain:      "edge_proxy_per_ip",
		Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("remote_address", "10.1.1.1"), envoyDesc("remote_address", "50.0.0.5")},
	})
	if err != nil || resp.OverallCode != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Fatalf("a black-listed address in the call: %v %v", resp, err)
	}
	if resp.Statuses[0].Code != rlsv3.RateLimitResponse_OK || resp.Statuses[1].Code != rlsv3.RateLimitResponse_OVER_LIMIT {
		t.Errorf("statuses %v, want the first OK and the second over", resp.Statuses)
	}
	usage, err := sluicev1.NewRateLimitServiceClient(conn).GetUsage(context.Background(), &sluicev1.GetUsageRequest{
		Domain: "edge_proxy_per_ip", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "remote_address", Value: "10.1.1.1"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if used := usage.Descriptors[0].Limits[0].Used; used != 0 {
		t.Errorf("the refused call charged 10.1.1.1 %d, want 0", used)
	}
}

// TestEnvoyLimitOverride: a descriptor's own limit (Envoy's RateLimitOverride)
// replaces the config's, as in envoyproxy/ratelimit.
func TestEnvoyLimitOverride(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, "testdata/envoy-ratelimit.yaml", rs.URL())
	client := rlsv3.NewRateLimitServiceClient(dial(t, s))
	call := func(unit typev3.RateLimitUnit) (*rlsv3.RateLimitResponse, error) {
		d := envoyDesc("remote_address", "10.7.7.7") // 10/s in the config
		d.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 2, Unit: unit}
		return client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "edge_proxy_per_ip", Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
	}
	for i := range 3 {
		resp, err := call(typev3.RateLimitUnit_MINUTE)
		if err != nil {
			t.Fatal(err)
		}
		want := rlsv3.RateLimitResponse_OK
		if i == 2 {
			want = rlsv3.RateLimitResponse_OVER_LIMIT
		}
		if resp.OverallCode != want || resp.Statuses[0].CurrentLimit.GetRequestsPerUnit() != 2 || resp.Statuses[0].CurrentLimit.GetUnit() != rlsv3.RateLimitResponse_RateLimit_MINUTE {
			t.Fatalf("call %d with a 2/min override: %v", i+1, resp)
		}
	}
	if _, err := call(typev3.RateLimitUnit_UNKNOWN); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "descriptors[0].limit.unit") {
		t.Errorf("override without a unit: %v, want InvalidArgument naming descriptors[0].limit.unit", err)
	}
}

// TestEnvoyMergedDomainConfig serves one domain split over two files, the
// way envoyproxy/ratelimit does with MERGE_DOMAIN_CONFIG=true: both halves
// limit, and each keeps its own counter.
func TestEnvoyMergedDomainConfig(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"a.yaml": "domain: split\ndescriptors:\n  - {key: api, value: a, rate_limit: {unit: minute, requests_per_unit: 2}}\n",
		"b.yaml": "domain: split\ndescriptors:\n  - {key: api, value: b, rate_limit: {unit: minute, requests_per_unit: 3}}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startSluiceWith(t, server.Config{ConfigPath: dir, RedisURL: redistest.New(t).URL(), MergeDomainConfig: true})
	client := rlsv3.NewRateLimitServiceClient(dial(t, s))
	admitted := func(value string) int {
		n := 0
		for range 5 {
			r, err := client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "split",
				Descriptors: []*ratelimitv3.RateLimitDescriptor{envoyDesc("api", value)}})
			if err != nil {
				t.Fatal(err)
			}
			if r.OverallCode == rlsv3.RateLimitResponse_OK {
				n++
			}
		}
		return n
	}
	if a, b := admitted("a"), admitted("b"); a != 2 || b != 3 {
		t.Errorf("admitted a=%d (limit 2 in a.yaml), b=%d (limit 3 in b.yaml)", a, b)
	}
}
