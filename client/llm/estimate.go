package llm

import (
	"encoding/json"

	"github.com/sluice-rl/sluice/client"
)

// The chat format's overhead, in tokens, as OpenAI's cookbook ("How to count
// tokens with tiktoken") counts it and verified against the API for gpt-4o,
// gpt-4o-mini, gpt-4 and gpt-3.5-turbo: every message is wrapped in
// <|start|>{role}<|message|>{content}<|end|> (3 tokens besides the role and
// content), a name costs 1 more, and the reply is primed with
// <|start|>assistant<|message|> (3).
const (
	perMessage   = 3
	perName      = 1
	replyPriming = 3
)

// heuristicPerMessage is the byte heuristic's overhead per message.
const heuristicPerMessage = 4

// request is the part of an OpenAI-style request body the estimate reads.
type request struct {
	Model               string            `json:"model"`
	Messages            []message         `json:"messages"`
	Prompt              json.RawMessage   `json:"prompt"`
	Input               json.RawMessage   `json:"input"`
	Instructions        string            `json:"instructions"`
	System              json.RawMessage   `json:"system"`
	Tools               []json.RawMessage `json:"tools"`
	Functions           []json.RawMessage `json:"functions"`
	MaxTokens           *uint64           `json:"max_tokens"`
	MaxCompletionTokens *uint64           `json:"max_completion_tokens"`
	MaxOutputTokens     *uint64           `json:"max_output_tokens"`
	N                   uint64            `json:"n"`
	Stream              bool              `json:"stream"`
}

// message is a Chat Completions message, or a Responses API input item.
type message struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Name      string          `json:"name"`
	Content   json.RawMessage `json:"content"`
	Refusal   string          `json:"refusal"`
	ToolCalls []struct {
		Function functionCall `json:"function"`
	} `json:"tool_calls"`
	Arguments string `json:"arguments"` // a Responses API function_call item
	Output    string `json:"output"`    // a Responses API function_call_output item
}

type functionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// perToolCall is what a tool call in a message costs besides its name and
// arguments (Sluice's rule; OpenAI documents none).
const perToolCall = 3

// Estimate returns the expected usage of an OpenAI-style request body: the
// prompt, counted with enc (ByModel: the encoding of the body's model), and
// the completion reservation, defaultCompletion when the body sets no
// maximum. See the package documentation for the rules.
func Estimate(body []byte, enc Encoding, defaultCompletion uint64) client.Usage {
	u, _ := estimate(body, enc, defaultCompletion, false)
	return u
}

// EstimateEmbedding is the usage of an embeddings request: its input's
// tokens, no overhead and no completion.
func EstimateEmbedding(body []byte, enc Encoding) client.Usage {
	u, _ := estimate(body, enc, 0, true)
	return u
}

// estimate is Estimate or EstimateEmbedding, and the encoding it used.
func estimate(body []byte, enc Encoding, defaultCompletion uint64, embedding bool) (client.Usage, Encoding) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: defaultCompletion}, Bytes
	}
	if enc == ByModel {
		enc = EncodingForModel(req.Model)
	}
	tc := counterFor(enc)
	if embedding {
		return client.Usage{PromptTokens: textTokens(req.Input, tc)}, enc
	}
	return client.Usage{PromptTokens: promptTokens(&req, tc, enc), CompletionTokens: completionTokens(&req, defaultCompletion)}, enc
}

func promptTokens(req *request, tc tokenCounter, enc Encoding) uint64 {
	if !tc.exact() {
		return heuristicTokens(req)
	}
	var n uint64
	chat := false
	for i := range req.Messages {
		n += messageTokens(&req.Messages[i], tc, enc)
		chat = true
	}
	if req.Instructions != "" { // a system message before the input
		n += perMessage + tc.count("system") + tc.count(req.Instructions)
		chat = true
	}
	if len(req.Input) > 0 && req.Input[0] == '"' {
		var s string
		if json.Unmarshal(req.Input, &s) == nil {
			n += perMessage + tc.count("user") + tc.count(s)
			chat = true
		}
	} else if len(req.Input) > 0 && req.Input[0] == '[' {
		var items []message
		if json.Unmarshal(req.Input, &items) == nil {
			for i := range items {
				n += messageTokens(&items[i], tc, enc)
			}
			chat = true
		}
	}
	n += textTokens(req.Prompt, tc) // Completions: the prompt alone, no chat format
	n += toolsTokens(req.Tools, tc, enc) + toolsTokens(req.Functions, tc, enc)
	if chat {
		n += replyPriming
	}
	return n
}

// messageTokens is one message (or Responses input item) in the chat format.
func messageTokens(m *message, tc tokenCounter, enc Encoding) uint64 {
	switch m.Type {
	case "function_call":
		return perToolCall + tc.count(m.Name) + tc.count(m.Arguments)
	case "function_call_output":
		return perMessage + tc.count("tool") + tc.count(m.Output)
	}
	n := perMessage + tc.count(m.Role) + contentTokens(m.Content, tc, enc) + tc.count(m.Refusal)
	if m.Name != "" {
		n += tc.count(m.Name) + perName
	}
	for _, call := range m.ToolCalls {
		n += perToolCall + tc.count(call.Function.Name) + tc.count(call.Function.Arguments)
	}
	return n
}

// part is one part of a content array: text, an image, or something the
// estimate does not price (audio, files).
type part struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	Refusal  string          `json:"refusal"`
	ImageURL json.RawMessage `json:"image_url"` // {url, detail} in chat, a string in Responses
	Detail   string          `json:"detail"`
}

// contentTokens counts a message's content: a string, or an array of parts.
func contentTokens(raw json.RawMessage, tc tokenCounter, enc Encoding) uint64 {
	if len(raw) == 0 {
		return 0
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		return tc.count(s)
	case '[':
		var parts []part
		if json.Unmarshal(raw, &parts) != nil {
			return tc.count(string(raw))
		}
		var n uint64
		for i := range parts {
			n += partTokens(&parts[i], tc, enc)
		}
		return n
	}
	return 0
}

func partTokens(p *part, tc tokenCounter, enc Encoding) uint64 {
	switch {
	case p.Type == "image_url" || p.Type == "input_image" || p.Type == "image":
		url, detail := imageRef(p)
		return imageTokens(url, detail)
	case p.Text != "":
		return tc.count(p.Text)
	case p.Refusal != "":
		return tc.count(p.Refusal)
	}
	return 0
}

// imageRef is the URL and detail of an image part in either API's shape.
func imageRef(p *part) (url, detail string) {
	detail = p.Detail
	if len(p.ImageURL) > 0 && p.ImageURL[0] == '"' {
		_ = json.Unmarshal(p.ImageURL, &url)
		return url, detail
	}
	var obj struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(p.ImageURL, &obj) == nil {
		url = obj.URL
		if obj.Detail != "" {
			detail = obj.Detail
		}
	}
	return url, detail
}

// textTokens counts a string or an array of strings (a prompt, an
// embeddings input); token arrays count one token per element.
func textTokens(raw json.RawMessage, tc tokenCounter) uint64 {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return tc.count(s)
	}
	var arr []json.RawMessage
	if raw[0] != '[' || json.Unmarshal(raw, &arr) != nil {
		return 0
	}
	var n uint64
	for _, e := range arr {
		switch {
		case len(e) > 0 && (e[0] == '"' || e[0] == '['):
			n += textTokens(e, tc)
		case len(e) > 0:
			n++ // a token id
		}
	}
	return n
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

// heuristicTokens is the byte heuristic for models of no known encoding:
// the text's UTF-8 bytes ÷ 4, rounded up, plus 4 per message, plus the tool
// definitions' JSON bytes ÷ 4.
func heuristicTokens(req *request) uint64 {
	n := 0
	for _, m := range req.Messages {
		n += textBytes(m.Content)
	}
	n += textBytes(req.Prompt) + textBytes(req.Input) + textBytes(req.System) + len(req.Instructions)
	for _, t := range req.Tools {
		n += len(t)
	}
	for _, f := range req.Functions {
		n += len(f)
	}
	msgs := uint64(len(req.Messages))
	if items := countItems(req.Input); items > 0 {
		msgs += items
	}
	return tokens(n) + heuristicPerMessage*msgs
}

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
