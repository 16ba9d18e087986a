package limiter

import (
	"time"

	"github.com/sluice-rl/sluice/server/config"
)

// DefaultOverLimitBody is what the gateway answers (with HTTP 503) when a
// backend cap is reached, unless the domain configures its own body.
const DefaultOverLimitBody = `{"fault":{"code":900801,"message":"API Limit Reached","description":"API not accepting requests"}}`

// Status is the answer for one request descriptor.
type Status struct {
	// Over is true when the descriptor's limit refuses the request. With
	// Shadow it is reported only; it does not refuse the call.
	Over   bool
	Shadow bool
	// Quota is true for a descriptor in quota mode: over, it refuses the
	// call only when every quota-mode descriptor of the call is over.
	Quota bool
	// Unlimited is true for a descriptor whose limit is unlimited: known,
	// never limited, never counted.
	Unlimited bool
	// Metadata is the matched descriptor's metadata (config.Rule.Metadata);
	// shared, do not modify it.
	Metadata map[string]any
	// Limit is the limit that decided: the refusing one when over, else the
	// one with the least remaining; nil when no limit matched.
	Limit      *config.Limit
	Remaining  uint64
	ResetAfter time.Duration
	// RetryAfter, when Over, is the time until the request would fit; 0
	// when it never will (NeverFits).
	RetryAfter time.Duration
	// NeverFits, when Over, says that the request costs more than Limit
	// admits in a whole window (Cost above Limit.Requests): waiting will
	// not help, so there is no RetryAfter. Such a refusal decides the
	// descriptor over any other.
	NeverFits bool
	// Cost is what the request asked of Limit; set with NeverFits.
	Cost uint64
	// Limits has every limit the descriptor matched, after the call.
	Limits []LimitState
}

// LimitState is one limit of a descriptor after a call.
type LimitState struct {
	Limit *config.Limit
	// Over: this limit refused (or a charge that cannot be refused went over).
	Over      bool
	Remaining uint64
	// Charged is what the call charged (negative: gave back); for a token
	// limit with an estimate, what it reserved.
	Charged int64
}

// Header is an HTTP header for the gateway to add to its answer.
type Header struct{ Key, Value string }

// Decision is the answer to a Request.
type Decision struct {
	// Over is true when an enforced limit refused: nothing was charged.
	Over     bool
	Statuses []Status
	// Refusal is the part of Headers() that only a refusal carries:
	// Retry-After and the domain's own over_limit_response headers.
	Refusal []Header
	// Body is the fault body to send when Over.
	Body string
	// OverLimitResponse is true when the domain configures
	// over_limit_response. Envoy's API sends Body and Refusal only then, as
	// envoyproxy/ratelimit sends neither.
	OverLimitResponse bool
	// Now is the Redis time of the decision (zero when no limit matched).
	Now time.Time
	// ReservationID names the tokens this call reserved; empty when none.
	ReservationID string
	// Cached is true when the refusal came from the replica's over-limit
	// cache, without a Redis call.
	Cached bool
	// FailedOpen is true when Redis could not be asked and the domain's
	// failure_mode is open: the call is admitted uncounted.
	FailedOpen bool
	// Leased is true when every limit was decided from this replica's quota
	// leases, without a Redis call: Remaining and the reset times are the
	// replica's estimates (docs/leases.md).
	Leased bool
}

// LimitUsage is the current state of one limit of one descriptor.
type LimitUsage struct {
	Limit      *config.Limit
	Used       uint64
	Remaining  uint64
	ResetAfter time.Duration
	// Reserved is the part of Used reserved by calls not reported yet.
	Reserved uint64
}

// DescriptorUsage is the current state of every limit one descriptor matched.
type DescriptorUsage struct {
	Entries   []config.Entry
	Matched   bool
	Unlimited bool
	Shadow    bool
	Limits    []LimitUsage
}

// Headers are RateLimit-Limit/-Remaining/-Reset of the deciding limit, and
// when over, the Refusal headers after them. They are made when asked for:
// Envoy's API sends its own (upstream's rules, grpcapi), so most decisions
// never need them.
func (d *Decision) Headers() []Header {
	return append(rateLimitHeaders(d, len(d.Refusal)), d.Refusal...)
}
