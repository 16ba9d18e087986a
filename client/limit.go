package client

import (
	"time"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// Kind says what a limit counts.
type Kind int

// The kinds of limit.
const (
	KindUnknown Kind = iota
	Requests
	TotalTokens
	PromptTokens
	CompletionTokens
)

// String names the kind as Sluice's config does.
func (k Kind) String() string {
	switch k {
	case Requests:
		return "requests"
	case TotalTokens:
		return "total_tokens"
	case PromptTokens:
		return "prompt_tokens"
	case CompletionTokens:
		return "completion_tokens"
	}
	return "unknown"
}

// Limit is one configured limit: at most Amount of Kind in any Window.
type Limit struct {
	Name   string
	Kind   Kind
	Amount uint64
	Window time.Duration
}

func limitFrom(p *sluicev1.RateLimit) Limit {
	if p == nil {
		return Limit{}
	}
	return Limit{
		Name:   p.GetName(),
		Kind:   kindFrom(p.GetKind()),
		Amount: p.GetRequestsPerUnit(),
		Window: p.GetWindow().AsDuration(),
	}
}

func kindFrom(k sluicev1.LimitKind) Kind {
	switch k {
	case sluicev1.LimitKind_REQUESTS:
		return Requests
	case sluicev1.LimitKind_TOTAL_TOKENS:
		return TotalTokens
	case sluicev1.LimitKind_PROMPT_TOKENS:
		return PromptTokens
	case sluicev1.LimitKind_COMPLETION_TOKENS:
		return CompletionTokens
	}
	return KindUnknown
}
