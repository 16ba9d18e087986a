package client

import (
	"net/http"
	"time"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// DefaultOverLimitBody is the fault an API manager answers with, HTTP 503,
// when a backend cap is reached. A FailClosed decision carries it too.
const DefaultOverLimitBody = `{"fault":{"code":900801,"message":"API Limit Reached","description":"API not accepting requests"}}`

// DefaultUnavailableBody is the fault of a call refused because Sluice did
// not answer and the client fails closed: the limit could not be checked.
// It is not the 900801 fault, so that an outage never looks like a reached
// cap (code 900810 is Sluice's own, outside the 900800–900807 throttling
// codes of API managers).
const DefaultUnavailableBody = `{"fault":{"code":900810,"message":"Rate Limit Check Unavailable","description":"The API's limits could not be checked; the call was not sent to the backend"}}`

// HeaderDecision is set on answers whose limits were not checked: the
// value is DecisionUnavailable (refused, fail closed) or DecisionFailedOpen
// (let through unchecked, fail open).
const (
	HeaderDecision      = "X-Sluice-Decision"
	DecisionUnavailable = "unavailable"
	DecisionFailedOpen  = "failed-open"
)

// Decision is Sluice's answer to one Check.
type Decision struct {
	// Allowed is true when the call may go to the backend.
	Allowed bool
	// FailedOpen is true when the call is allowed only because Sluice did
	// not answer and the client fails open.
	FailedOpen bool
	// FailedClosed is true when the call is refused only because Sluice did
	// not answer and the client fails closed.
	FailedClosed bool
	// Limit is the limit that decided: the refusing one when over limit, else
	// the one with the least remaining. Zero when no limit matched.
	Limit Limit
	// Remaining is what Limit still admits.
	Remaining uint64
	// ResetAfter is the time until everything Limit counts has left its
	// window.
	ResetAfter time.Duration
	// RetryAfter, when refused, is the time until the call would fit; zero
	// when it never will (NeverFits).
	RetryAfter time.Duration
	// NeverFits, when refused, is true when the call costs more than the
	// whole of Limit: waiting will not help, so there is no RetryAfter.
	NeverFits bool
	// Headers are for the gateway to add to its answer: RateLimit-Limit,
	// RateLimit-Remaining, RateLimit-Reset and, when refused, Retry-After.
	Headers http.Header
	// Body is what the gateway answers, HTTP 503, when the call is refused:
	// Sluice's over-limit body, or the client's unavailable body when
	// FailedClosed.
	Body string
	// Reservation names the tokens Sluice reserved for Request.Estimate;
	// empty when nothing was reserved.
	Reservation string

	c   *Client
	req *Request
}

// Report sends the call's actual usage to Sluice in the background: with the
// reservation when there is one, else charged directly to the request's
// descriptors. It never blocks; see Stats for reports dropped or lost. A
// Decision from a Request with an Estimate but without a Reservation matched
// no token limit, so its Report sends nothing.
func (d Decision) Report(u Usage) {
	if d.c == nil || d.req == nil {
		return
	}
	if d.Reservation == "" && !d.req.Estimate.IsZero() && !d.FailedOpen {
		return
	}
	d.c.rep.enqueue(&sluicev1.ReportUsageRequest{
		ReservationId: d.Reservation,
		Usage:         u.proto(),
		Domain:        d.req.Domain,
		Descriptors:   protoDescriptors(d.req.Descriptors),
	})
}

// ReportEstimate reports the request's estimate as the actual usage and
// counts it in Stats.UsageMissing: for calls whose real usage cannot be found,
// so that a missing usage never silently refunds the reservation.
func (d Decision) ReportEstimate() {
	if d.c == nil || d.req == nil {
		return
	}
	d.c.stats.usageMissing.Add(1)
	d.Report(d.req.Estimate)
}

// decisionFrom reads a ShouldRateLimit answer.
func decisionFrom(resp *sluicev1.ShouldRateLimitResponse) Decision {
	over := resp.GetOverallCode() == sluicev1.Code_OVER_LIMIT
	d := Decision{Allowed: !over, Reservation: resp.GetReservationId()}
	var top *sluicev1.DescriptorStatus
	for _, s := range resp.GetStatuses() {
		if s.GetCurrentLimit() == nil {
			continue
		}
		if over && (s.GetCode() != sluicev1.Code_OVER_LIMIT || s.GetShadowMode()) {
			continue
		}
		switch {
		case top == nil:
			top = s
		case over && top.GetNeverFits():
			// a call that never fits is answered by that limit
		case over && s.GetNeverFits():
			top = s
		case over && s.GetRetryAfter().AsDuration() > top.GetRetryAfter().AsDuration():
			top = s
		case !over && s.GetLimitRemaining() < top.GetLimitRemaining():
			top = s
		}
	}
	if top != nil {
		d.Limit = limitFrom(top.GetCurrentLimit())
		d.Remaining = top.GetLimitRemaining()
		d.ResetAfter = top.GetDurationUntilReset().AsDuration()
		d.RetryAfter = top.GetRetryAfter().AsDuration()
		d.NeverFits = over && top.GetNeverFits()
	}
	if hs := resp.GetResponseHeadersToAdd(); len(hs) > 0 {
		d.Headers = make(http.Header, len(hs))
		for _, h := range hs {
			d.Headers.Add(h.GetKey(), h.GetValue())
		}
	}
	if over {
		d.Body = resp.GetRawBody()
		if d.Body == "" {
			d.Body = DefaultOverLimitBody
		}
	}
	return d
}
