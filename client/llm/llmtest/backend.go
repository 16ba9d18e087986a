// Package llmtest is a fake OpenAI-compatible backend for tests and demos:
// Chat Completions and Responses, as JSON or as server-sent-event streams,
// with deterministic usage, plus a plain JSON answer on every other path for
// REST APIs.
//
// Usage is counted in words, not real tokens: prompt tokens are the words of
// the request's text plus 3 per message, completion tokens the words of the
// reply. The numbers only have to be the backend's own, as a real model's
// are.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/sluice-rl/sluice/client"
)

// Backend is the fake. The zero value answers "Hello from the backend".
type Backend struct {
	// Name is echoed in every answer, e.g. "production". (Optional)
	Name string
	// Reply is the completion text; streams send it one word per event.
	// (Optional, default "Hello from the backend")
	Reply string
	// BeforeLast, when set, is called in a stream after the first content
	// event is flushed and before the last one is written. (Optional)
	BeforeLast func()
	// OmitUsage leaves usage out of every answer. (Optional)
	OmitUsage bool

	calls atomic.Int64
}

// Calls is the number of requests the backend has answered.
func (b *Backend) Calls() int64 { return b.calls.Load() }

func (b *Backend) reply() string {
	if b.Reply != "" {
		return b.Reply
	}
	return "Hello from the backend"
}

// chatRequest is what the fake reads of a request.
type chatRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Messages []struct {
		Content string `json:"content"`
	} `json:"messages"`
	Input        json.RawMessage `json:"input"`
	Instructions string          `json:"instructions"`
}

// Usage is what the fake reports for a request body and its reply.
func (b *Backend) Usage(body []byte) client.Usage {
	var req chatRequest
	_ = json.Unmarshal(body, &req)
	prompt := len(strings.Fields(req.Instructions))
	for _, m := range req.Messages {
		prompt += len(strings.Fields(m.Content)) + 3
	}
	var input string
	if json.Unmarshal(req.Input, &input) == nil {
		prompt += len(strings.Fields(input)) + 3
	}
	completion := len(strings.Fields(b.reply()))
	return client.Usage{PromptTokens: uint64(prompt), CompletionTokens: uint64(completion), TotalTokens: uint64(prompt + completion)}
}

// ServeHTTP answers one call.
func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.calls.Add(1)
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
		b.chat(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/responses"):
		b.responses(w, r)
	default:
		writeJSON(w, map[string]any{"backend": b.Name, "method": r.Method, "path": r.URL.Path})
	}
}

func (b *Backend) read(w http.ResponseWriter, r *http.Request) ([]byte, *chatRequest, bool) {
	body, err := io.ReadAll(r.Body)
	var req chatRequest
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		writeJSONStatus(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"message": "bad request body: " + err.Error()}})
		return nil, nil, false
	}
	return body, &req, true
}

func (b *Backend) chat(w http.ResponseWriter, r *http.Request) {
	body, req, ok := b.read(w, r)
	if !ok {
		return
	}
	u := b.Usage(body)
	usage := map[string]any{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens, "total_tokens": u.TotalTokens}
	if !req.Stream {
		out := map[string]any{
			"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model, "backend": b.Name,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": b.reply()}}},
		}
		if !b.OmitUsage {
			out["usage"] = usage
		}
		writeJSON(w, out)
		return
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		c := map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
		if req.StreamOptions.IncludeUsage && !b.OmitUsage {
			c["usage"] = nil
		}
		return c
	}
	s := newStream(w)
	words := strings.Fields(b.reply())
	s.event("", chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		if i == len(words)-1 && b.BeforeLast != nil {
			b.BeforeLast()
		}
		s.event("", chunk(map[string]any{"content": word}, nil))
	}
	s.event("", chunk(map[string]any{}, "stop"))
	if req.StreamOptions.IncludeUsage && !b.OmitUsage {
		s.event("", map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": req.Model,
			"choices": []any{}, "usage": usage})
	}
	s.data("[DONE]")
}

func (b *Backend) responses(w http.ResponseWriter, r *http.Request) {
	body, req, ok := b.read(w, r)
	if !ok {
		return
	}
	u := b.Usage(body)
	resp := map[string]any{
		"id": "resp_1", "object": "response", "model": req.Model, "status": "completed", "backend": b.Name,
		"output": []any{map[string]any{"type": "message", "role": "assistant",
			"content": []any{map[string]any{"type": "output_text", "text": b.reply()}}}},
	}
	if !b.OmitUsage {
		resp["usage"] = map[string]any{"input_tokens": u.PromptTokens, "output_tokens": u.CompletionTokens, "total_tokens": u.TotalTokens}
	}
	if !req.Stream {
		writeJSON(w, resp)
		return
	}
	s := newStream(w)
	words := strings.Fields(b.reply())
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		if i == len(words)-1 && b.BeforeLast != nil {
			b.BeforeLast()
		}
		s.event("response.output_text.delta", map[string]any{"type": "response.output_text.delta", "delta": word})
	}
	s.event("response.completed", map[string]any{"type": "response.completed", "response": resp})
}

// stream writes server-sent events, flushing each.
type stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return &stream{w: w, rc: http.NewResponseController(w)}
}

func (s *stream) event(name string, v any) {
	raw, _ := json.Marshal(v)
	if name != "" {
		fmt.Fprintf(s.w, "event: %s\n", name)
	}
	s.data(string(raw))
}

func (s *stream) data(d string) {
	fmt.Fprintf(s.w, "data: %s\n\n", d)
	_ = s.rc.Flush()
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
