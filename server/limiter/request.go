package limiter

import (
	"fmt"
	"unicode/utf8"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// Bounds on one request. They keep a single call from costing Redis (or the
// key space) more than a gateway could mean to spend.
const (
	MaxDescriptors = 64
	MaxEntries     = 32
	MaxDomainLen   = 256
	MaxKeyLen      = 256
	MaxValueLen    = 1024
	MaxHits        = 1_000_000_000
	MaxTokens      = 1_000_000_000
)

// Request is one "may this go through?" question.
type Request struct {
	Domain      string
	Descriptors []Descriptor
	// Hits is the cost of the request for request limits; 0 means 1.
	Hits uint64
	// Estimate, when set, is reserved on the token limits the descriptors
	// match. Without it token limits admit while below the limit.
	Estimate *Usage
	// TokenHits makes hits count tokens on token limits, as Envoy's token
	// flow sends them: 0 checks, more charges usage that already happened
	// (even past the limit), a Negative descriptor gives it back.
	TokenHits bool
	// DecideOnly restricts the request to charges within the limits, for a
	// caller with only the decide-only token: a refund (Negative), a limit
	// Override or a charge past the limit (TokenHits on a token limit) is a
	// *PermissionError, and nothing is charged.
	DecideOnly bool
}

// Descriptor selects limits; Hits, when HasHits, replaces the request's cost
// for this descriptor (0 then means "check only"). Negative gives the hits
// back instead of charging them (Envoy's is_negative_hits).
type Descriptor struct {
	Entries  []config.Entry
	Hits     uint64
	HasHits  bool
	Negative bool
	// Override, when set, is the descriptor's only limit, whatever the
	// config says (Envoy's per-descriptor limit override); the domain must
	// still be configured.
	Override *config.Limit
}

// Usage is an amount of tokens: an estimate before the call or what it used.
type Usage struct {
	Prompt, Completion uint64
	// Total is prompt plus completion unless the backend said otherwise;
	// 0 means prompt + completion.
	Total uint64
}

// total is Total, or prompt + completion when Total is 0.
func (u *Usage) total() uint64 {
	if u.Total != 0 {
		return u.Total
	}
	return u.Prompt + u.Completion
}

// of is the amount of one token kind.
func (u *Usage) of(k config.Kind) uint64 {
	switch k {
	case config.KindPromptTokens:
		return u.Prompt
	case config.KindCompletionTokens:
		return u.Completion
	default:
		return u.total()
	}
}

// validate checks each amount; field names the usage as the caller spelled it.
func (u *Usage) validate(field string) error {
	for _, a := range []struct {
		name string
		v    uint64
	}{{"prompt_tokens", u.Prompt}, {"completion_tokens", u.Completion}, {"total_tokens", u.Total}} {
		if a.v > MaxTokens {
			return invalid(field+"."+a.name, "must be at most %d, got %d", MaxTokens, a.v)
		}
	}
	if u.Total != 0 && u.Total < u.Prompt+u.Completion {
		return invalid(field+".total_tokens", "%d is below prompt_tokens + completion_tokens (%d + %d): the total includes both; send it as the backend stated it, or 0 for their sum", u.Total, u.Prompt, u.Completion)
	}
	return nil
}

// InvalidError is bad input. Field names the offending field as the caller
// spelled it, e.g. "descriptors[1].entries[0].key".
type InvalidError struct {
	Field string
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// PermissionError is a request the caller's credentials do not allow (see
// Request.DecideOnly). Field names the offending field as the caller spelled
// it. Nothing was charged.
type PermissionError struct {
	Field string
	Msg   string
}

func (e *PermissionError) Error() string { return e.Field + ": " + e.Msg }

// decideOnlyMsg says why a decide-only caller was refused.
const decideOnlyMsg = "%s; the decide-only token may not, use the full token"

func denied(field, what string) error {
	return &PermissionError{Field: field, Msg: fmt.Sprintf(decideOnlyMsg, what)}
}

// validate checks a request before anything is read or charged.
func (r *Request) validate(b *Bounds) error {
	switch {
	case r.Domain == "":
		return invalid("domain", "must not be empty")
	case len(r.Domain) > MaxDomainLen:
		return invalid("domain", "longer than %d bytes", MaxDomainLen)
	case len(r.Descriptors) == 0:
		return invalid("descriptors", "must not be empty")
	case len(r.Descriptors) > MaxDescriptors:
		return invalid("descriptors", "more than %d descriptors", MaxDescriptors)
	case r.Hits > MaxHits:
		return invalid("hits_addend", "must be at most %d, got %d", MaxHits, r.Hits)
	}
	if r.Estimate != nil {
		if err := r.Estimate.validate("usage_estimate"); err != nil {
			return err
		}
	}
	for i, d := range r.Descriptors {
		if err := d.validate(i); err != nil {
			return err
		}
		if err := checkOverride(i, &d); err != nil {
			return err
		}
	}
	if err := b.checkSize(r); err != nil {
		return err
	}
	if r.DecideOnly {
		for i := range r.Descriptors {
			switch d := &r.Descriptors[i]; {
			case d.Negative:
				return denied(fmt.Sprintf("descriptors[%d].is_negative_hits", i), "gives quota back")
			case d.Override != nil:
				return denied(fmt.Sprintf("descriptors[%d].limit", i), "replaces the configured limit")
			}
		}
	}
	return nil
}

// checkForced refuses, for a DecideOnly request, the counters p would charge
// past their limit (Envoy's hits on a token limit).
func (r *Request) checkForced(p *plan) error {
	if !r.DecideOnly {
		return nil
	}
	for _, u := range p.uses {
		if p.counters[u.counter].Op == lua.OpForce {
			return denied(fmt.Sprintf("descriptors[%d].hits_addend", u.descriptor), "hits on a token limit charge tokens past the limit")
		}
	}
	return nil
}

func (d *Descriptor) validate(i int) error {
	if len(d.Entries) == 0 {
		return invalid(fmt.Sprintf("descriptors[%d].entries", i), "must not be empty")
	}
	if len(d.Entries) > MaxEntries {
		return invalid(fmt.Sprintf("descriptors[%d].entries", i), "more than %d entries", MaxEntries)
	}
	if d.HasHits && d.Hits > MaxHits {
		return invalid(fmt.Sprintf("descriptors[%d].hits_addend", i), "must be at most %d, got %d", MaxHits, d.Hits)
	}
	for j, e := range d.Entries {
		field := func(name string) string { return fmt.Sprintf("descriptors[%d].entries[%d].%s", i, j, name) }
		switch {
		case e.Key == "":
			return invalid(field("key"), "must not be empty")
		case len(e.Key) > MaxKeyLen:
			return invalid(field("key"), "longer than %d bytes", MaxKeyLen)
		case len(e.Value) > MaxValueLen:
			return invalid(field("value"), "longer than %d bytes", MaxValueLen)
		case !utf8.ValidString(e.Key):
			return invalid(field("key"), "not valid UTF-8")
		case !utf8.ValidString(e.Value):
			return invalid(field("value"), "not valid UTF-8")
		}
	}
	return nil
}

// counter says what descriptor d does to one of its limits: how much, and how.
func (r *Request) counter(d *Descriptor, lim *config.Limit) (uint64, lua.Op) {
	switch {
	case d.Negative:
		return r.hits(d), lua.OpRefund
	case !lim.Kind.IsTokens():
		return r.hits(d), lua.OpCheck
	case r.TokenHits:
		if h := r.hits(d); h > 0 {
			return h, lua.OpForce
		}
		return 0, lua.OpCheck
	case r.Estimate != nil:
		return r.Estimate.of(lim.Kind), lua.OpReserve
	default:
		return 0, lua.OpCheck
	}
}

// hits is what this descriptor charges each of its limits.
func (r *Request) hits(d *Descriptor) uint64 {
	if d.HasHits {
		return d.Hits
	}
	if r.Hits == 0 {
		return 1
	}
	return r.Hits
}
