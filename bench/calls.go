package main

import (
	"context"
	"fmt"

	rlcommon "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// descriptorValue names descriptor i of a call. The config's key-only rules
// give every value its own counter, so n descriptors charge n counters.
func descriptorValue(i int) string { return fmt.Sprintf("d%d", i) }

// shouldRateLimitCalls returns one call per caller: ShouldRateLimit with n
// descriptors under key, over the API named by api, caller i on conn i%len.
// With counters > 1 the calls spread over that many sets of counters: a
// caller's successive calls take the next set in turn (descriptor values
// d0-c0, d0-c1, ...), the callers starting evenly apart. The requests are
// built once and only read while calls run.
func shouldRateLimitCalls(api, key string, n, counters, callers int, conns []*grpc.ClientConn) []callFunc {
	calls := make([]callFunc, callers)
	switch api {
	case "sluice":
		reqs := requestSets(n, counters, func(values []string) *sluicev1.ShouldRateLimitRequest {
			req := &sluicev1.ShouldRateLimitRequest{Domain: benchDomain, HitsAddend: 1}
			for _, v := range values {
				req.Descriptors = append(req.Descriptors, &sluicev1.Descriptor{
					Entries: []*sluicev1.Entry{{Key: key, Value: v}},
				})
			}
			return req
		})
		for i := range calls {
			c := sluicev1.NewRateLimitServiceClient(conns[i%len(conns)])
			next := inTurn(reqs, i, callers)
			calls[i] = func(ctx context.Context) (bool, error) {
				resp, err := c.ShouldRateLimit(ctx, next())
				if err != nil {
					return false, err
				}
				return resp.GetOverallCode() == sluicev1.Code_OVER_LIMIT, nil
			}
		}
	default: // envoy
		reqs := requestSets(n, counters, func(values []string) *rlsv3.RateLimitRequest {
			req := &rlsv3.RateLimitRequest{Domain: benchDomain, HitsAddend: 1}
			for _, v := range values {
				req.Descriptors = append(req.Descriptors, &rlcommon.RateLimitDescriptor{
					Entries: []*rlcommon.RateLimitDescriptor_Entry{{Key: key, Value: v}},
				})
			}
			return req
		})
		for i := range calls {
			c := rlsv3.NewRateLimitServiceClient(conns[i%len(conns)])
			next := inTurn(reqs, i, callers)
			calls[i] = func(ctx context.Context) (bool, error) {
				resp, err := c.ShouldRateLimit(ctx, next())
				if err != nil {
					return false, err
				}
				return resp.GetOverallCode() == rlsv3.RateLimitResponse_OVER_LIMIT, nil
			}
		}
	}
	return calls
}

// requestSets builds one request per set of counters (max(counters, 1)
// sets) with newReq from the set's n descriptor values: d0, d1, ... for one
// set, d0-c0, d1-c0, ... for set c of several.
func requestSets[R any](n, counters int, newReq func(values []string) R) []R {
	reqs := make([]R, max(counters, 1))
	for c := range reqs {
		values := make([]string, n)
		for i := range values {
			values[i] = descriptorValue(i)
			if counters > 1 {
				values[i] = fmt.Sprintf("%s-c%d", values[i], c)
			}
		}
		reqs[c] = newReq(values)
	}
	return reqs
}

// inTurn returns caller i's request source over reqs: the callers start
// evenly apart and each takes the next request in turn. One caller's source
// is called by that caller only.
func inTurn[R any](reqs []R, i, callers int) func() R {
	next := i * len(reqs) / callers
	return func() R {
		r := reqs[next]
		next = (next + 1) % len(reqs)
		return r
	}
}

// reserveReportCalls returns one reserve-then-report per caller: a native
// ShouldRateLimit with a usage estimate on three token limits (total, prompt,
// completion), then ReportUsage of the actual usage with its reservation id.
// Each call is two RPCs and, in Redis, two script calls.
func reserveReportCalls(callers int, conns []*grpc.ClientConn) []callFunc {
	req := &sluicev1.ShouldRateLimitRequest{
		Domain:        benchDomain,
		Descriptors:   []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: keyTokens, Value: "chat"}}}},
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 100, CompletionTokens: 200},
	}
	usage := &sluicev1.Usage{PromptTokens: 90, CompletionTokens: 150}
	calls := make([]callFunc, callers)
	for i := range calls {
		c := sluicev1.NewRateLimitServiceClient(conns[i%len(conns)])
		calls[i] = func(ctx context.Context) (bool, error) {
			resp, err := c.ShouldRateLimit(ctx, req)
			if err != nil {
				return false, err
			}
			if resp.GetReservationId() == "" {
				return resp.GetOverallCode() == sluicev1.Code_OVER_LIMIT, fmt.Errorf("no reservation: %v", resp.GetOverallCode())
			}
			_, err = c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: resp.GetReservationId(), Usage: usage})
			return false, err
		}
	}
	return calls
}

// healthCalls returns one grpc.health.v1 Check per caller: the cheapest call
// the server (sluice or envoyproxy/ratelimit) answers, so the ceiling of its
// gRPC stack.
func healthCalls(callers int, conns []*grpc.ClientConn) []callFunc {
	req := &healthpb.HealthCheckRequest{}
	calls := make([]callFunc, callers)
	for i := range calls {
		c := healthpb.NewHealthClient(conns[i%len(conns)])
		calls[i] = func(ctx context.Context) (bool, error) {
			resp, err := c.Check(ctx, req)
			if err != nil {
				return false, err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return false, fmt.Errorf("health: %v", resp.GetStatus())
			}
			return false, nil
		}
	}
	return calls
}
