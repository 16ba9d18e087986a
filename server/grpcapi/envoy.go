package grpcapi

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// Envoy implements envoy.service.ratelimit.v3.RateLimitService, wire
// compatible with Envoy's global rate-limit filter and envoyproxy/ratelimit.
type Envoy struct {
	rlsv3.UnimplementedRateLimitServiceServer
	lim *limiter.Limiter
}

// NewEnvoy serves lim as Envoy's rate limit service.
func NewEnvoy(lim *limiter.Limiter) *Envoy { return &Envoy{lim: lim} }

// ShouldRateLimit decides one Envoy request. Per-descriptor hits_addend
// overrides the request's; a shadow-mode descriptor answers OK, as in
// envoyproxy/ratelimit. On token limits hits are tokens (Envoy's token flow):
// 0 only checks, more charges usage that already happened even past the
// limit (the response-path call of apply_on_stream_done), and
// is_negative_hits gives them back.
func (e *Envoy) ShouldRateLimit(ctx context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	req := limiter.Request{
		Domain: in.GetDomain(), Hits: uint64(in.GetHitsAddend()), TokenHits: true,
		Descriptors: make([]limiter.Descriptor, len(in.GetDescriptors())),
	}
	for i, d := range in.GetDescriptors() {
		entries := make([]config.Entry, len(d.GetEntries()))
		for j, en := range d.GetEntries() {
			entries[j] = config.Entry{Key: en.GetKey(), Value: en.GetValue()}
		}
		req.Descriptors[i].Entries = entries
		if d.GetHitsAddend() != nil {
			req.Descriptors[i].Hits, req.Descriptors[i].HasHits = d.GetHitsAddend().GetValue(), true
		}
		req.Descriptors[i].Negative = d.GetIsNegativeHits()
		if o := d.GetLimit(); o != nil {
			lim, err := envoyOverride(o)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "descriptors[%d].limit.%v", i, err)
			}
			req.Descriptors[i].Override = &lim
		}
	}
	dec, err := e.lim.ShouldRateLimit(ctx, &req)
	if err != nil {
		return nil, toStatus(err)
	}
	markFailedOpen(ctx, &dec)
	return envoyResponse(&dec), nil
}

func envoyResponse(dec *limiter.Decision) *rlsv3.RateLimitResponse {
	out := &rlsv3.RateLimitResponse{
		OverallCode: envoyCode(dec.Over),
		Statuses:    make([]*rlsv3.RateLimitResponse_DescriptorStatus, len(dec.Statuses)),
	}
	for i, st := range dec.Statuses {
		ds := &rlsv3.RateLimitResponse_DescriptorStatus{
			Code:           envoyCode(st.Over && !st.Shadow),
			LimitRemaining: clamp32(st.Remaining),
		}
		if st.Limit != nil {
			ds.CurrentLimit = envoyLimit(st.Limit)
			ds.DurationUntilReset = durationpb.New(st.ResetAfter)
		}
		out.Statuses[i] = ds
	}
	for _, h := range dec.Headers {
		out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd, &corev3.HeaderValue{Key: h.Key, Value: h.Value})
	}
	if dec.Over {
		out.RawBody = []byte(dec.Body)
	}
	return out
}

func envoyCode(over bool) rlsv3.RateLimitResponse_Code {
	if over {
		return rlsv3.RateLimitResponse_OVER_LIMIT
	}
	return rlsv3.RateLimitResponse_OK
}

// envoyUnits are Envoy's units with their lengths, longest first.
var envoyUnits = func() []envoyUnit {
	var out []envoyUnit
	for _, u := range []rlsv3.RateLimitResponse_RateLimit_Unit{
		rlsv3.RateLimitResponse_RateLimit_YEAR,
		rlsv3.RateLimitResponse_RateLimit_MONTH,
		rlsv3.RateLimitResponse_RateLimit_WEEK,
		rlsv3.RateLimitResponse_RateLimit_DAY,
		rlsv3.RateLimitResponse_RateLimit_HOUR,
		rlsv3.RateLimitResponse_RateLimit_MINUTE,
		rlsv3.RateLimitResponse_RateLimit_SECOND,
	} {
		length, _ := config.UnitWindow(u.String())
		out = append(out, envoyUnit{u, length})
	}
	return out
}()

type envoyUnit struct {
	unit   rlsv3.RateLimitResponse_RateLimit_Unit
	length time.Duration
}

// envoyLimit describes l in Envoy's terms: a window of whole units becomes
// the longest unit that divides it, with a unit_multiplier when it is not 1.
func envoyLimit(l *config.Limit) *rlsv3.RateLimitResponse_RateLimit {
	out := &rlsv3.RateLimitResponse_RateLimit{Name: l.Name, RequestsPerUnit: clamp32(l.Requests)}
	for _, u := range envoyUnits {
		if l.Window%u.length == 0 {
			out.Unit = u.unit
			if n := l.Window / u.length; n != 1 {
				out.UnitMultiplier = wrapperspb.UInt32(uint32(min(int64(n), math.MaxUint32)))
			}
			break
		}
	}
	return out
}

// envoyOverride turns Envoy's per-descriptor limit override into a limit:
// requests_per_unit per unit_multiplier units (1 when unset), a sliding window
// like every other.
func envoyOverride(o *ratelimitv3.RateLimitDescriptor_RateLimitOverride) (config.Limit, error) {
	unit := strings.ToLower(o.GetUnit().String())
	length, ok := config.UnitWindow(unit)
	if !ok {
		return config.Limit{}, fmt.Errorf("unit: unknown unit %v", o.GetUnit())
	}
	n := uint32(1)
	if m := o.GetUnitMultiplier(); m != nil {
		if n = m.GetValue(); n == 0 {
			return config.Limit{}, fmt.Errorf("unit_multiplier: must be at least 1")
		}
	}
	if n != 1 {
		unit = ""
	}
	return config.RequestLimit(uint64(o.GetRequestsPerUnit()), time.Duration(n)*length, unit), nil
}

func clamp32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }
