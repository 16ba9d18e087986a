package llm

import (
	"encoding/json"

	"github.com/sluice-rl/sluice/client"
)

// perMessage is the chat template's overhead per message, in tokens.
const perMessage = 4

// request is the part of an OpenAI-style request body the estimate reads.
type request struct {
	Messages            []message       `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Instructions        string          `json:"instructions"`
	System              json.RawMessage `json:"system"`
	MaxTokens           *uint64         `json:"max_tokens"`
	MaxCompletionTokens *uint64         `json:"max_completion_tokens"`
	MaxOutputTokens     *uint64         `json:"max_output_tokens"`
	N                   uint64          `json:"n"`
	Stream              bool            `json:"stream"`
}

type message struct {
	Content json.RawMessage `json:"content"`
}

// Estimate returns the expected usage of an OpenAI-style request body: the
// prompt estimate (see the package documentation for the method and its
// error) and the completion reservation, defaultCompletion when the body
// sets no maximum.
func Estimate(body []byte, defaultCompletion uint64) client.Usage {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: defaultCompletion}
	}
	return client.Usage{PromptTokens: promptTokens(&req), CompletionTokens: completionTokens(&req, defaultCompletion)}
}

func promptTokens(req *request) uint64 {
	n := 0
	for _, m := range req.Messages {
		n += textBytes(m.Content)
	}
	n += textBytes(req.Prompt) + textBytes(req.Input) + textBytes(req.System) + len(req.Instructions)
	msgs := uint64(len(req.Messages))
	if items := countItems(req.Input); items > 0 {
		msgs += items
	}
	return tokens(n) + perMessage*msgs
}

func completionTokens(req *request, def uint64) uint64 {
	var max uint64
	switch {
	case req.MaxCompletionTokens != nil:
		max = *req.MaxCompletionTokens
	case req.MaxOutputTokens != nil:
		max = *req.MaxOutputTokens
	case req.MaxTokens != nil:
		max = *req.MaxTokens
	default:
		max = def
	}
	if req.N > 1 {
		max *= req.N
	}
	return max
}

// tokens is bytes/4, rounded up.
func tokens(bytes int) uint64 { return uint64(bytes+3) / 4 }

// textBytes sums the lengths of the text in a content value: a string, an
// array of strings or parts, or objects with text or content.
func textBytes(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0
	}
	return walkText(v, 0)
}

// walkText counts strings and the text/content of objects, to a bounded
// depth.
func walkText(v any, depth int) int {
	if depth > 8 {
		return 0
	}
	switch t := v.(type) {
	case string:
		return len(t)
	case []any:
		n := 0
		for _, e := range t {
			n += walkText(e, depth+1)
		}
		return n
	case map[string]any:
		n := 0
		for _, k := range []string{"text", "content", "input_text"} {
			if e, ok := t[k]; ok {
				n += walkText(e, depth+1)
			}
		}
		return n
	}
	return 0
}

// countItems is the number of message items in a Responses API input array.
func countItems(raw json.RawMessage) uint64 {
	var items []json.RawMessage
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
		return 0
	}
	return uint64(len(items))
}
