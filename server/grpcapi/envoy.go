package grpcapi

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// Envoy implements envoy.service.ratelimit.v3.RateLimitService, wire
// compatible with Envoy's global rate-limit filter and envoyproxy/ratelimit:
// an unchanged upstream config gets upstream's answers (see
// docs/envoy-compatibility.md).
type Envoy struct {
	rlsv3.UnimplementedRateLimitServiceServer
	lim  *limiter.Limiter
	opts EnvoyOptions
}

// EnvoyOptions are the answers' settings that envoyproxy/ratelimit takes from
// its environment. The zero value answers as upstream does by default.
type EnvoyOptions struct {
	// Headers sends the RateLimit-Limit, -Remaining and -Reset headers of
	// the descriptor closest to its limit (LIMIT_RESPONSE_HEADERS_ENABLED).
	Headers bool
	// HeaderNames renames them (LIMIT_LIMIT_HEADER, LIMIT_REMAINING_HEADER,
	// LIMIT_RESET_HEADER); an empty name keeps the default.
	HeaderNames HeaderNames
	// DynamicMetadata fills the response's dynamic_metadata
	// (RESPONSE_DYNAMIC_METADATA): the request, and the metadata of the
	// descriptors that passed (see envoyMetadata).
	DynamicMetadata bool
}

// HeaderNames are the names of the three RateLimit headers.
type HeaderNames struct{ Limit, Remaining, Reset string }

// withDefaults fills the empty names with upstream's defaults.
func (n HeaderNames) withDefaults() HeaderNames {
	return HeaderNames{
		Limit:     cmp.Or(n.Limit, limiter.HeaderLimit),
		Remaining: cmp.Or(n.Remaining, limiter.HeaderRemaining),
		Reset:     cmp.Or(n.Reset, limiter.HeaderReset),
	}
}

// NewEnvoy serves lim as Envoy's rate limit service.
func NewEnvoy(lim *limiter.Limiter, opts EnvoyOptions) *Envoy {
	opts.HeaderNames = opts.HeaderNames.withDefaults()
	return &Envoy{lim: lim, opts: opts}
}

// ShouldRateLimit decides one Envoy request. Per-descriptor hits_addend
// overrides the request's; a shadow-mode descriptor answers OK, as in
// envoyproxy/ratelimit. On token limits hits are tokens (Envoy's token flow):
// 0 only checks, more charges usage that already happened even past the
// limit (the response-path call of apply_on_stream_done), and
// is_negative_hits gives them back.
func (e *Envoy) ShouldRateLimit(ctx context.Context, in *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	req := limiter.Request{
		Domain: in.GetDomain(), Hits: uint64(in.GetHitsAddend()), TokenHits: true, DecideOnly: decideOnly(ctx),
		Descriptors: make([]limiter.Descriptor, len(in.GetDescriptors())),
	}
	n := 0
	for _, d := range in.GetDescriptors() {
		n += len(d.GetEntries())
	}
	all := make([]config.Entry, n) // every descriptor's entries, in one allocation
	for i, d := range in.GetDescriptors() {
		entries := all[:len(d.GetEntries()):len(d.GetEntries())]
		all = all[len(entries):]
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
	out := e.response(&dec)
	if e.opts.DynamicMetadata {
		out.DynamicMetadata = envoyMetadata(in, &dec)
	}
	return out, nil
}

// response is the answer as envoyproxy/ratelimit gives it: per descriptor
// its code (shadow mode answers OK), limit, remaining and reset; an
// unlimited descriptor OK with limit_remaining 4294967295 and no limit; the
// RateLimit headers only when enabled; and a refusal's body and headers
// (Retry-After, the domain's own) only when the domain configures
// over_limit_response, since upstream sends none.
func (e *Envoy) response(dec *limiter.Decision) *rlsv3.RateLimitResponse {
	out, room := newResponse(len(dec.Statuses))
	out.OverallCode = envoyCode(dec.Over)
	for i := range dec.Statuses {
		st := &dec.Statuses[i]
		ds := room.status()
		ds.Code, ds.LimitRemaining = envoyCode(st.Over && !st.Shadow), clamp32(st.Remaining)
		switch {
		case st.Unlimited:
			ds.LimitRemaining = math.MaxUint32
		case st.Limit != nil:
			ds.CurrentLimit = envoyLimit(room.limit(), st.Limit)
			if !(st.Over && st.NeverFits) { // no reset to wait for: the cost is above the limit
				ds.DurationUntilReset = room.duration(st.ResetAfter)
			}
		}
		if st.Over {
			ds.LimitRemaining = 0 // upstream's, even where a smaller cost would fit
		}
		out.Statuses[i] = ds
	}
	if e.opts.Headers {
		out.ResponseHeadersToAdd = e.rateLimitHeaders(dec.Statuses, out.Statuses)
	}
	if dec.Over && dec.OverLimitResponse {
		for _, h := range dec.Refusal {
			out.ResponseHeadersToAdd = append(out.ResponseHeadersToAdd, &corev3.HeaderValue{Key: h.Key, Value: h.Value})
		}
		out.RawBody = []byte(dec.Body)
	}
	return out
}

// rateLimitHeaders describes the descriptor upstream picks: the last one an
// enforced limit refuses, else the first with the least remaining (a
// quota-mode or shadow-mode descriptor over its limit has 0 remaining).
func (e *Envoy) rateLimitHeaders(dec []limiter.Status, statuses []*rlsv3.RateLimitResponse_DescriptorStatus) []*corev3.HeaderValue {
	var top *rlsv3.RateLimitResponse_DescriptorStatus
	var reset time.Duration
	for i, st := range statuses {
		refused := dec[i].Over && !dec[i].Shadow && !dec[i].Quota
		if st.GetCurrentLimit() != nil && (refused || top == nil || st.GetLimitRemaining() < top.GetLimitRemaining()) {
			top, reset = st, dec[i].ResetAfter
		}
	}
	if top == nil {
		return nil
	}
	n := e.opts.HeaderNames
	return []*corev3.HeaderValue{
		{Key: n.Limit, Value: strconv.FormatUint(uint64(top.GetCurrentLimit().GetRequestsPerUnit()), 10)},
		{Key: n.Remaining, Value: strconv.FormatUint(uint64(top.GetLimitRemaining()), 10)},
		{Key: n.Reset, Value: strconv.FormatInt(int64((reset+time.Second-1)/time.Second), 10)},
	}
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

// envoyLimit describes l in Envoy's terms, in out (empty), which it returns:
// a window of whole units becomes the longest unit that divides it, with a
// unit_multiplier when it is not 1.
func envoyLimit(out *rlsv3.RateLimitResponse_RateLimit, l *config.Limit) *rlsv3.RateLimitResponse_RateLimit {
	out.Name, out.RequestsPerUnit = l.Name, clamp32(l.Requests)
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
	if time.Duration(n) > limiter.MaxOverrideWindow/length { // also keeps n × length from overflowing
		return config.Limit{}, fmt.Errorf("unit_multiplier: %d × %v is longer than %d days, the longest window an override may have",
			n, o.GetUnit(), limiter.MaxOverrideWindow/(24*time.Hour))
	}
	if n != 1 {
		unit = ""
	}
	return config.RequestLimit(uint64(o.GetRequestsPerUnit()), time.Duration(n)*length, unit), nil
}

func clamp32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }
