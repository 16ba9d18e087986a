package llm

import (
	"encoding/json"

	"github.com/sluice-rl/sluice/client"
)

// usageJSON is a usage object of either OpenAI API.
type usageJSON struct {
	PromptTokens     *uint64 `json:"prompt_tokens"`
	CompletionTokens *uint64 `json:"completion_tokens"`
	InputTokens      *uint64 `json:"input_tokens"`
	OutputTokens     *uint64 `json:"output_tokens"`
	TotalTokens      *uint64 `json:"total_tokens"`
}

// answer is the part of an OpenAI-style answer (or stream event) that holds
// usage: at the top, or inside response for Responses API events.
type answer struct {
	Usage    *usageJSON `json:"usage"`
	Response *struct {
		Usage *usageJSON `json:"usage"`
	} `json:"response"`
}

// UsageFromJSON finds the usage in an OpenAI-style JSON answer or stream
// event: usage.prompt_tokens/completion_tokens/total_tokens, or
// usage.input_tokens/output_tokens/total_tokens, at the top or under
// response. It reports false when there is none.
func UsageFromJSON(body []byte) (client.Usage, bool) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return client.Usage{}, false
	}
	u := a.Usage
	if u == nil && a.Response != nil {
		u = a.Response.Usage
	}
	if u == nil {
		return client.Usage{}, false
	}
	out := client.Usage{
		PromptTokens:     first(u.PromptTokens, u.InputTokens),
		CompletionTokens: first(u.CompletionTokens, u.OutputTokens),
		TotalTokens:      first(u.TotalTokens),
	}
	if u.PromptTokens == nil && u.InputTokens == nil && u.CompletionTokens == nil && u.OutputTokens == nil && u.TotalTokens == nil {
		return client.Usage{}, false
	}
	return out, true
}

func first(vs ...*uint64) uint64 {
	for _, v := range vs {
		if v != nil {
			return *v
		}
	}
	return 0
}
