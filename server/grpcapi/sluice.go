// Package grpcapi serves the limiter over gRPC: the native sluice.v1 API and
// Envoy's envoy.service.ratelimit.v3 API, both on one server.
package grpcapi

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/durationpb"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// Sluice implements sluice.v1.RateLimitService.
type Sluice struct {
	sluicev1.UnimplementedRateLimitServiceServer
	lim *limiter.Limiter
}

// NewSluice serves lim as sluice.v1.RateLimitService.
func NewSluice(lim *limiter.Limiter) *Sluice { return &Sluice{lim: lim} }

// ShouldRateLimit decides one request; see the proto for the contract.
func (s *Sluice) ShouldRateLimit(ctx context.Context, in *sluicev1.ShouldRateLimitRequest) (*sluicev1.ShouldRateLimitResponse, error) {
	req := limiter.Request{Domain: in.GetDomain(), Hits: in.GetHitsAddend(), Descriptors: fromSluiceDescriptors(in.GetDescriptors()), DecideOnly: decideOnly(ctx)}
	if e := in.GetUsageEstimate(); e != nil {
		req.Estimate = &limiter.Usage{Prompt: e.GetPromptTokens(), Completion: e.GetCompletionTokens()}
	}
	dec, err := s.lim.ShouldRateLimit(ctx, &req)
	if err != nil {
		return nil, toStatus(err)
	}
	markFailedOpen(ctx, &dec)
	out := &sluicev1.ShouldRateLimitResponse{
		OverallCode:   sluiceCode(dec.Over),
		Statuses:      make([]*sluicev1.DescriptorStatus, len(dec.Statuses)),
		RawBody:       dec.Body,
		ReservationId: dec.ReservationID,
	}
	for i, st := range dec.Statuses {
		ds := &sluicev1.DescriptorStatus{
			Code:           sluiceCode(st.Over),
			CurrentLimit:   sluiceLimit(st.Limit),
			LimitRemaining: st.Remaining,
			ShadowMode:     st.Shadow,
		}
		if st.Limit != nil {
			ds.DurationUntilReset = durationpb.New(st.ResetAfter)
		}
		switch {
		case st.Over && st.NeverFits:
			ds.NeverFits, ds.Detail = true, neverFitsDetail(&st)
		case st.Over:
			ds.RetryAfter = durationpb.New(st.RetryAfter)
		}
		if len(st.Limits) > 0 {
			ds.Limits = make([]*sluicev1.LimitStatus, len(st.Limits))
			for j, ls := range st.Limits {
				ds.Limits[j] = &sluicev1.LimitStatus{
					Limit: sluiceLimit(ls.Limit), Code: sluiceCode(ls.Over), Remaining: ls.Remaining,
				}
				if ls.Limit.Kind.IsTokens() && ls.Charged > 0 {
					ds.Limits[j].Reserved = uint64(ls.Charged)
				}
			}
		}
		out.Statuses[i] = ds
	}
	if hs := dec.Headers(); len(hs) > 0 {
		out.ResponseHeadersToAdd = make([]*sluicev1.Header, len(hs))
		for i, h := range hs {
			out.ResponseHeadersToAdd[i] = &sluicev1.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out, nil
}

// GetUsage reports usage without charging.
func (s *Sluice) GetUsage(ctx context.Context, in *sluicev1.GetUsageRequest) (*sluicev1.GetUsageResponse, error) {
	req := limiter.Request{Domain: in.GetDomain(), Descriptors: fromSluiceDescriptors(in.GetDescriptors())}
	usage, err := s.lim.Usage(ctx, &req)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &sluicev1.GetUsageResponse{Descriptors: make([]*sluicev1.DescriptorUsage, len(usage))}
	for i, u := range usage {
		du := &sluicev1.DescriptorUsage{
			Entries:    in.GetDescriptors()[i].GetEntries(),
			Matched:    u.Matched,
			Unlimited:  u.Unlimited,
			ShadowMode: u.Shadow,
		}
		for _, l := range u.Limits {
			du.Limits = append(du.Limits, &sluicev1.LimitUsage{
				Limit:              sluiceLimit(l.Limit),
				Used:               l.Used,
				Remaining:          l.Remaining,
				DurationUntilReset: durationpb.New(l.ResetAfter),
				Reserved:           l.Reserved,
			})
		}
		out.Descriptors[i] = du
	}
	return out, nil
}

// ReportUsage reconciles a reservation, or charges usage by descriptors.
func (s *Sluice) ReportUsage(ctx context.Context, in *sluicev1.ReportUsageRequest) (*sluicev1.ReportUsageResponse, error) {
	u := in.GetUsage()
	if u == nil { // a report without it would cancel the reservation
		return nil, toStatus(&limiter.InvalidError{Field: "usage", Msg: "required: the tokens the call used (all zero when it used none)"})
	}
	req := limiter.ReportRequest{
		ReservationID: in.GetReservationId(),
		Usage:         limiter.Usage{Prompt: u.GetPromptTokens(), Completion: u.GetCompletionTokens(), Total: u.GetTotalTokens()},
		Domain:        in.GetDomain(),
		Descriptors:   fromSluiceDescriptors(in.GetDescriptors()),
	}
	res, err := s.lim.Report(ctx, &req)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &sluicev1.ReportUsageResponse{ChargedDirectly: res.Direct, Limits: make([]*sluicev1.LimitStatus, len(res.Limits))}
	for i, l := range res.Limits {
		rl := sluiceLimit(l.Limit)
		if rl == nil {
			rl = &sluicev1.RateLimit{RequestsPerUnit: l.Amount, Window: durationpb.New(l.Window)}
		}
		rl.Kind = sluiceKind(l.Kind)
		out.Limits[i] = &sluicev1.LimitStatus{Limit: rl, Code: sluiceCode(l.Used > l.Amount), Remaining: l.Remaining}
	}
	return out, nil
}

// neverFitsDetail says why a request that can never fit is refused.
func neverFitsDetail(st *limiter.Status) string {
	return fmt.Sprintf("the request costs %d, more than the whole limit of %d per %v: it will never fit, and waiting will not help",
		st.Cost, st.Limit.Requests, st.Limit.Window)
}

func fromSluiceDescriptors(in []*sluicev1.Descriptor) []limiter.Descriptor {
	out := make([]limiter.Descriptor, len(in))
	for i, d := range in {
		out[i].Entries = make([]config.Entry, len(d.GetEntries()))
		for j, e := range d.GetEntries() {
			out[i].Entries[j] = config.Entry{Key: e.GetKey(), Value: e.GetValue()}
		}
		if d.HitsAddend != nil {
			out[i].Hits, out[i].HasHits = d.GetHitsAddend(), true
		}
	}
	return out
}

func sluiceCode(over bool) sluicev1.Code {
	if over {
		return sluicev1.Code_OVER_LIMIT
	}
	return sluicev1.Code_OK
}

func sluiceLimit(l *config.Limit) *sluicev1.RateLimit {
	if l == nil {
		return nil
	}
	return &sluicev1.RateLimit{
		Name:            l.Name,
		Kind:            sluiceKind(l.Kind),
		RequestsPerUnit: l.Requests,
		Window:          durationpb.New(l.Window),
		Unit:            l.Unit,
	}
}

func sluiceKind(k config.Kind) sluicev1.LimitKind {
	switch k {
	case config.KindRequests:
		return sluicev1.LimitKind_REQUESTS
	case config.KindTotalTokens:
		return sluicev1.LimitKind_TOTAL_TOKENS
	case config.KindPromptTokens:
		return sluicev1.LimitKind_PROMPT_TOKENS
	case config.KindCompletionTokens:
		return sluicev1.LimitKind_COMPLETION_TOKENS
	}
	return sluicev1.LimitKind_LIMIT_KIND_UNSPECIFIED
}
