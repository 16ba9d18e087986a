package client

import sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"

// Entry is one key/value pair of a descriptor, e.g. api=ChatAPI:1.0.0.
type Entry struct {
	Key   string
	Value string
}

// Descriptor is an ordered list of entries that selects limits in Sluice's
// config.
type Descriptor []Entry

// Request is one question to Sluice: may this call go through?
type Request struct {
	// Domain selects the config. (Required)
	Domain string
	// Descriptors select the limits. (Required, at least one)
	Descriptors []Descriptor
	// Hits is the cost of the call for request limits. (Optional, default 1)
	Hits uint64
	// Estimate is the expected token usage; when set and a token limit
	// matches, Sluice reserves it and the Decision carries a Reservation.
	// (Optional)
	Estimate Usage
}

// Usage counts the tokens of one AI call.
type Usage struct {
	PromptTokens     uint64
	CompletionTokens uint64
	// TotalTokens is the backend's total; 0 means PromptTokens +
	// CompletionTokens.
	TotalTokens uint64
}

// Total is TotalTokens, or the sum of prompt and completion tokens when
// TotalTokens is 0.
func (u Usage) Total() uint64 {
	if u.TotalTokens != 0 {
		return u.TotalTokens
	}
	return u.PromptTokens + u.CompletionTokens
}

// IsZero reports whether u counts nothing.
func (u Usage) IsZero() bool { return u == Usage{} }

// APIDescriptors is the descriptor list of an API manager's backend cap:
// [api=<name>:<version>, environment=<env>] as one descriptor.
func APIDescriptors(name, version, environment string) []Descriptor {
	return []Descriptor{{{Key: "api", Value: name + ":" + version}, {Key: "environment", Value: environment}}}
}

func (r *Request) proto() *sluicev1.ShouldRateLimitRequest {
	out := &sluicev1.ShouldRateLimitRequest{
		Domain:      r.Domain,
		Descriptors: protoDescriptors(r.Descriptors),
		HitsAddend:  r.Hits,
	}
	if !r.Estimate.IsZero() {
		out.UsageEstimate = &sluicev1.UsageEstimate{
			PromptTokens:     r.Estimate.PromptTokens,
			CompletionTokens: r.Estimate.CompletionTokens,
		}
	}
	return out
}

func protoDescriptors(ds []Descriptor) []*sluicev1.Descriptor {
	out := make([]*sluicev1.Descriptor, len(ds))
	for i, d := range ds {
		pd := &sluicev1.Descriptor{Entries: make([]*sluicev1.Entry, len(d))}
		for j, e := range d {
			pd.Entries[j] = &sluicev1.Entry{Key: e.Key, Value: e.Value}
		}
		out[i] = pd
	}
	return out
}

func (u Usage) proto() *sluicev1.Usage {
	return &sluicev1.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
}
