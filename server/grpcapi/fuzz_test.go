package grpcapi

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// fuzzConfig has a limit of every kind the fuzzer can reach: requests,
// tokens (with all three parts), shadow and quota mode, unlimited, and a
// wildcard.
const fuzzConfig = `
domain: d
descriptors:
  - key: k
    value: v
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: api
    descriptors:
      - key: environment
        rate_limit: {unit: second, requests_per_unit: 100}
        token_limit: {window: 1m, total_tokens: 1000, prompt_tokens: 600, completion_tokens: 500}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: quota
    quota_mode: true
    rate_limit: {unit: hour, requests_per_unit: 3}
  - key: open
    rate_limit: {unlimited: true}
  - key: w
    value: a*
    rate_limit: {window: 1s, requests: 2, buckets: 4}
`

// fuzzServers are both APIs on one limiter, on a miniredis the fuzz
// function empties before every input.
func fuzzServers(f *testing.F) (*Envoy, *Sluice, *miniredis.Miniredis) {
	dom, err := config.Parse("fuzz.yaml", []byte(fuzzConfig))
	if err != nil {
		f.Fatal(err)
	}
	set, err := config.NewSet(dom)
	if err != nil {
		f.Fatal(err)
	}
	mr := miniredis.RunT(f)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { _ = rdb.Close() })
	lim := limiter.New(func() *config.Set { return set }, rdb, "fuzz:")
	return NewEnvoy(lim, EnvoyOptions{Headers: true, DynamicMetadata: true}), NewSluice(lim), mr
}

// FuzzRequests decodes any bytes as an Envoy RateLimitRequest, a sluice.v1
// ShouldRateLimitRequest or a ReportUsageRequest (by api) and calls the
// service with it on a healthy store. Whatever the caller sends:
//   - the answer is a decision or InvalidArgument / NotFound, never
//     Internal, Unknown or Unavailable (bad input is not a Redis failure);
//   - a decision has one status per descriptor;
//   - an InvalidArgument or NotFound wrote nothing to Redis;
//   - every key written has a TTL.
func FuzzRequests(f *testing.F) {
	envoy, native, mr := fuzzServers(f)
	entry := func(k, v string) *ratelimitv3.RateLimitDescriptor_Entry {
		return &ratelimitv3.RateLimitDescriptor_Entry{Key: k, Value: v}
	}
	seed := func(api uint8, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(api, b)
	}
	seed(0, &rlsv3.RateLimitRequest{Domain: "d", HitsAddend: 1_000_000_000, Descriptors: []*ratelimitv3.RateLimitDescriptor{{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("k", "v")}}}})
	seed(0, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*ratelimitv3.RateLimitDescriptor{{
		Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("k", "x")},
		Limit:   &ratelimitv3.RateLimitDescriptor_RateLimitOverride{RequestsPerUnit: 3, Unit: typev3.RateLimitUnit_YEAR, UnitMultiplier: wrapperspb.UInt32(292)},
	}}})
	seed(0, &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*ratelimitv3.RateLimitDescriptor{
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("api", "a"), entry("environment", "production")}, HitsAddend: wrapperspb.UInt64(700)},
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("api", "a"), entry("environment", "production")}, IsNegativeHits: true, HitsAddend: wrapperspb.UInt64(1_000_000_000)},
		{Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("quota", "q")}}, {Entries: []*ratelimitv3.RateLimitDescriptor_Entry{entry("w", "abc")}},
	}})
	seed(1, &sluicev1.ShouldRateLimitRequest{Domain: "d", HitsAddend: 3,
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 2000, CompletionTokens: 1},
		Descriptors: []*sluicev1.Descriptor{
			{Entries: []*sluicev1.Entry{{Key: "api", Value: "a"}, {Key: "environment", Value: "sandbox"}}},
			{Entries: []*sluicev1.Entry{{Key: "shadow", Value: "s"}}, HitsAddend: proto.Uint64(9)},
			{Entries: []*sluicev1.Entry{{Key: "open", Value: "o"}}},
		}})
	seed(2, &sluicev1.ReportUsageRequest{Domain: "d", Usage: &sluicev1.Usage{PromptTokens: 5, CompletionTokens: 6, TotalTokens: 11},
		Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "api", Value: "a"}, {Key: "environment", Value: "production"}}}}})
	seed(2, &sluicev1.ReportUsageRequest{ReservationId: "0123456789abcdef0123456789abcdef", Usage: &sluicev1.Usage{TotalTokens: 1}})
	seed(2, &sluicev1.ReportUsageRequest{ReservationId: "0123456789abcdef0123456789abcdef.1.2", Usage: &sluicev1.Usage{}})

	f.Fuzz(func(t *testing.T, api uint8, data []byte) {
		mr.FlushAll()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var descriptors, statuses int
		var err error
		switch api % 3 {
		case 0:
			var req rlsv3.RateLimitRequest
			if proto.Unmarshal(data, &req) != nil {
				return
			}
			var resp *rlsv3.RateLimitResponse
			resp, err = envoy.ShouldRateLimit(ctx, &req)
			descriptors, statuses = len(req.GetDescriptors()), len(resp.GetStatuses())
		case 1:
			var req sluicev1.ShouldRateLimitRequest
			if proto.Unmarshal(data, &req) != nil {
				return
			}
			var resp *sluicev1.ShouldRateLimitResponse
			resp, err = native.ShouldRateLimit(ctx, &req)
			descriptors, statuses = len(req.GetDescriptors()), len(resp.GetStatuses())
		case 2:
			var req sluicev1.ReportUsageRequest
			if proto.Unmarshal(data, &req) != nil {
				return
			}
			_, err = native.ReportUsage(ctx, &req)
		}
		switch code := status.Code(err); code {
		case codes.OK:
			if api%3 != 2 && statuses != descriptors {
				t.Fatalf("%d statuses for %d descriptors", statuses, descriptors)
			}
		case codes.InvalidArgument, codes.NotFound:
			if keys := mr.Keys(); len(keys) > 0 {
				t.Fatalf("%v, yet Redis holds %v", err, keys)
			}
		default:
			t.Fatalf("api %d: %v: want a decision, InvalidArgument or NotFound", api%3, err)
		}
		for _, k := range mr.Keys() {
			if mr.TTL(k) <= 0 {
				t.Fatalf("key %s has no TTL", k)
			}
		}
	})
}
