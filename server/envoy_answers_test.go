package server_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/grpcapi"
	"github.com/sluice-rl/sluice/server/limiter"
)

func headerMap(r *rlsv3.RateLimitResponse) map[string]string {
	m := map[string]string{}
	for _, h := range r.GetResponseHeadersToAdd() {
		m[h.GetKey()] = h.GetValue()
	}
	return m
}

// TestEnvoyAnswersAnUnchangedConfigAsUpstream: with upstream's defaults an
// upstream config gets upstream's answers on Envoy's API — no RateLimit
// headers, no body, no dynamic metadata — while sluice.v1 keeps its 900801
// default.
func TestEnvoyAnswersAnUnchangedConfigAsUpstream(t *testing.T) {
	s := startSluice(t, "testdata/envoy-ratelimit.yaml", redistest.New(t).URL())
	conn := dial(t, s)
	e := &envoy{t: t, client: rlsv3.NewRateLimitServiceClient(conn)}
	ok := e.call("edge_proxy_per_ip", 0, envoyDesc("remote_address", "10.2.0.1"))
	over := e.call("edge_proxy_per_ip", 0, envoyDesc("remote_address", "50.0.0.5"))
	for _, r := range []*rlsv3.RateLimitResponse{ok, over} {
		if len(r.ResponseHeadersToAdd) != 0 || len(r.RawBody) != 0 || r.DynamicMetadata != nil {
			t.Errorf("%v: headers %v, body %q, metadata %v; want none", r.OverallCode, r.ResponseHeadersToAdd, r.RawBody, r.DynamicMetadata)
		}
	}
	if over.OverallCode != overCode || over.Statuses[0].LimitRemaining != 0 {
		t.Errorf("black-listed address: %v", over)
	}
	v1, err := sluicev1.NewRateLimitServiceClient(conn).ShouldRateLimit(context.Background(), &sluicev1.ShouldRateLimitRequest{
		Domain: "edge_proxy_per_ip", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "remote_address", Value: "50.0.0.5"}}}},
	})
	if err != nil || v1.RawBody != limiter.DefaultOverLimitBody || len(v1.ResponseHeadersToAdd) == 0 {
		t.Errorf("sluice.v1 refusal: %v %v, want the 900801 body and headers", v1, err)
	}
}

// TestEnvoyResponseHeaders: LIMIT_RESPONSE_HEADERS_ENABLED's headers, under
// upstream's names or LIMIT_*_HEADER's, describing the descriptor upstream
// picks: the one refused, else the one with the least remaining.
func TestEnvoyResponseHeaders(t *testing.T) {
	cfg := server.Config{ConfigPath: "testdata/envoy-ratelimit.yaml", EnvoyResponseHeaders: true}
	e := newEnvoy(t, cfg)
	r := e.call("edge_proxy_per_ip", 0, envoyDesc("generic_key", "default"), envoyDesc("remote_address", "10.3.0.1"))
	got := headerMap(r)
	reset, _ := strconv.Atoi(got["RateLimit-Reset"])
	if got["RateLimit-Limit"] != "3" || got["RateLimit-Remaining"] != "2" || reset < 60 || reset > 66 || len(got) != 3 {
		t.Errorf("OK call: headers %v, want the 3/min limit with 2 remaining, resetting in 60s to 60s + one 6s bucket", got)
	}
	r = e.call("edge_proxy_per_ip", 0, envoyDesc("generic_key", "default"), envoyDesc("remote_address", "50.0.0.5"))
	if got := headerMap(r); got["RateLimit-Limit"] != "0" || got["RateLimit-Remaining"] != "0" || len(got) != 3 || len(r.RawBody) != 0 {
		t.Errorf("refused call: headers %v body %q, want the refusing 0/s limit's three headers and no body", got, r.RawBody)
	}

	cfg.EnvoyHeaderNames = grpcapi.HeaderNames{Limit: "X-Limit", Reset: "X-Reset"}
	e = newEnvoy(t, cfg)
	r = e.call("edge_proxy_per_ip", 0, envoyDesc("remote_address", "10.3.0.2"))
	if got := headerMap(r); got["X-Limit"] != "10" || got["RateLimit-Remaining"] != "9" || got["X-Reset"] == "" || len(got) != 3 {
		t.Errorf("renamed headers: %v", got)
	}
}

// TestEnvoyRefusalWithOverLimitResponse: a domain that sets
// over_limit_response opts in to Sluice's refusal on Envoy's API: its body
// as raw_body, Retry-After and its own headers.
func TestEnvoyRefusalWithOverLimitResponse(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: writeConfig(t, `
domain: apim
over_limit_response:
  body: '{"fault":{"code":900801}}'
  headers: {Content-Type: application/json}
descriptors:
  - {key: api, value: a, rate_limit: {unit: minute, requests_per_unit: 1}}
`)})
	if r := e.call("apim", 0, envoyDesc("api", "a")); len(r.ResponseHeadersToAdd) != 0 || len(r.RawBody) != 0 {
		t.Errorf("admitted: %v", r)
	}
	r := e.call("apim", 0, envoyDesc("api", "a"))
	got := headerMap(r)
	if r.OverallCode != overCode || string(r.RawBody) != `{"fault":{"code":900801}}` || got["Content-Type"] != "application/json" || got["Retry-After"] == "" || len(got) != 2 {
		t.Errorf("refused: body %q headers %v", r.RawBody, got)
	}

	// Headers only: the default body comes with them.
	e = newEnvoy(t, server.Config{ConfigPath: writeConfig(t, `
domain: apim
over_limit_response: {headers: {X-Why: cap}}
descriptors:
  - {key: api, value: a, rate_limit: {unit: minute, requests_per_unit: 0}}
`)})
	if r := e.call("apim", 0, envoyDesc("api", "a")); string(r.RawBody) != limiter.DefaultOverLimitBody || headerMap(r)["X-Why"] != "cap" {
		t.Errorf("over_limit_response with headers only: %v", r)
	}
}

// TestEnvoyDynamicMetadata is upstream's RESPONSE_DYNAMIC_METADATA=true on
// its test/config/metadata.yaml: the request, and the metadata of the
// descriptors that passed, the first one's winning.
func TestEnvoyDynamicMetadata(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "test-config", "metadata.yaml"), EnvoyDynamicMetadata: true})
	sub := envoyDesc("key1", "value1", "subkey1", "x") // 5/s, metadata {name: service_1}
	sub.HitsAddend = wrapperspb.UInt64(2)
	key2 := envoyDesc("key2", "y") // 20/min, metadata {service_with_quota: {name: service_2}}
	key2.Limit = &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 30, Unit: typev3.RateLimitUnit_MINUTE}
	r := e.call("test-domain", 3, sub, key2)
	got := r.GetDynamicMetadata().AsMap()
	want := map[string]any{
		"domain": "test-domain",
		"descriptors": []any{
			map[string]any{"entries": []any{"key1=value1", "subkey1=x"}, "hitsAddend": 2.0},
			map[string]any{"entries": []any{"key2=y"}, "limit": key2.Limit.String()},
		},
		"hitsAddend": 3.0,
		// key2's limit override replaces the config's limit, and its metadata
		// with it, as upstream's override does.
		"metadata":         map[string]any{"name": "service_1"},
		"quotaModeEnabled": false,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dynamic metadata\n got %v\nwant %v", got, want)
	}

	r = e.call("test-domain", 0, envoyDesc("key2", "z"), envoyDesc("key1", "value1", "subkey1", "x"))
	merged := r.GetDynamicMetadata().AsMap()["metadata"]
	if want := map[string]any{"service_with_quota": map[string]any{"name": "service_2"}, "name": "service_1"}; !reflect.DeepEqual(merged, want) {
		t.Errorf("metadata of two passed descriptors: %v, want %v", merged, want)
	}
	// Over its 5/s, the first descriptor did not pass: only key2's metadata.
	r = e.call("test-domain", 5, envoyDesc("key1", "value1", "subkey1", "x"), envoyDesc("key2", "z2"))
	if merged := r.GetDynamicMetadata().AsMap()["metadata"]; r.OverallCode != overCode || !reflect.DeepEqual(merged, map[string]any{"service_with_quota": map[string]any{"name": "service_2"}}) {
		t.Errorf("one descriptor over: %v metadata %v", r.OverallCode, merged)
	}
}

// TestEnvoyQuotaModeViolations: the quota-mode descriptors over their limit,
// as upstream reported them between January and April 2026.
func TestEnvoyQuotaModeViolations(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "examples"), EnvoyDynamicMetadata: true})
	ds := []*ratelimitv3.RateLimitDescriptor{envoyDesc("service", "service_1"), envoyDesc("service", "service_2")}
	e.call("rl", 0, ds...)
	r := e.call("rl", 0, ds...)
	m := r.GetDynamicMetadata().AsMap()
	if r.OverallCode != okCode || r.Statuses[0].Code != overCode || !reflect.DeepEqual(m["quotaModeViolations"], []any{0.0}) || m["quotaModeEnabled"] != true {
		t.Errorf("service_1 over, service_2 not: %v, metadata %v", r, m)
	}
	if name := m["metadata"].(map[string]any)["service_with_quota"].(map[string]any)["name"]; name != "service_2" {
		t.Errorf("passed metadata names %v, want service_2", name)
	}
}

// TestEnvoyZeroHitsAndCheckThenCharge: hits_addend 0 is a check. On a
// quota-mode limit it passes at the limit, as upstream's used + hits > limit
// rule does; on an enforced limit — which Sluice never lets pass its limit —
// it passes only while one more would fit. In Envoy's two-call flow (0 on the
// request, N on the response) an enforced rate_limit does not record a
// response-path charge that does not fit, where upstream would; a quota-mode
// limit (upstream's own example) records the charge that passes it, and the
// next check refuses.
func TestEnvoyZeroHitsAndCheckThenCharge(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: writeConfig(t, `
domain: d
descriptors:
  - {key: quota, quota_mode: true, rate_limit: {unit: minute, requests_per_unit: 10}}
  - {key: enforced, rate_limit: {unit: minute, requests_per_unit: 10}}
`)})
	hits := func(key, value string, n uint64) rlsv3.RateLimitResponse_Code {
		d := envoyDesc(key, value)
		d.HitsAddend = wrapperspb.UInt64(n)
		return e.call("d", 0, d).OverallCode
	}
	for key, atLimit := range map[string]rlsv3.RateLimitResponse_Code{"quota": okCode, "enforced": overCode} {
		hits(key, "full", 10)
		if got := hits(key, "full", 0); got != atLimit {
			t.Errorf("%s: a check at the limit: %v, want %v", key, got, atLimit)
		}
	}
	for key, checkAfter := range map[string]rlsv3.RateLimitResponse_Code{"enforced": okCode, "quota": overCode} {
		hits(key, "flow", 8)
		if got := hits(key, "flow", 0); got != okCode {
			t.Fatalf("%s: the request-path check at 8 of 10: %v", key, got)
		}
		hits(key, "flow", 5) // the response path: 13 of 10
		if got := hits(key, "flow", 0); got != checkAfter {
			t.Errorf("%s: the next check: %v, want %v", key, got, checkAfter)
		}
	}
}
