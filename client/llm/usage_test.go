package llm

import (
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/client"
)

func TestUsageFromJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want client.Usage
		ok   bool
	}{
		{"chat", `{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}`,
			client.Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42}, true},
		{"chat details", `{"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":2}}}`,
			client.Usage{PromptTokens: 5, CompletionTokens: 7, TotalTokens: 12}, true},
		{"responses", `{"object":"response","usage":{"input_tokens":9,"output_tokens":3,"total_tokens":12}}`,
			client.Usage{PromptTokens: 9, CompletionTokens: 3, TotalTokens: 12}, true},
		{"responses event", `{"type":"response.completed","response":{"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}}`,
			client.Usage{PromptTokens: 1, CompletionTokens: 2, TotalTokens: 3}, true},
		{"no total", `{"usage":{"prompt_tokens":4,"completion_tokens":6}}`, client.Usage{PromptTokens: 4, CompletionTokens: 6}, true},
		{"null usage", `{"choices":[{"delta":{"content":"hi"}}],"usage":null}`, client.Usage{}, false},
		{"empty usage", `{"usage":{}}`, client.Usage{}, false},
		{"no usage", `{"choices":[]}`, client.Usage{}, false},
		{"not json", `<html>`, client.Usage{}, false},
	} {
		got, ok := UsageFromJSON([]byte(tc.body))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if u := (client.Usage{PromptTokens: 4, CompletionTokens: 6}); u.Total() != 10 {
		t.Errorf("Total without total_tokens: %d", u.Total())
	}
}

const chatStream = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n" +
	"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":1,\"total_tokens\":12}}\n\n" +
	"data: [DONE]\n\n"

const responsesStream = "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\r\n\r\n" +
	"event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1,\"total_tokens\":4}}}\r\n\r\n"

func TestStreamUsageFindsTheFinalChunkWhateverTheWrites(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		want         client.Usage
	}{
		{"chat", chatStream, client.Usage{PromptTokens: 11, CompletionTokens: 1, TotalTokens: 12}},
		{"responses, CRLF", responsesStream, client.Usage{PromptTokens: 3, CompletionTokens: 1, TotalTokens: 4}},
		{"no final newline", strings.TrimSuffix(responsesStream, "\r\n\r\n"), client.Usage{PromptTokens: 3, CompletionTokens: 1, TotalTokens: 4}},
	} {
		for _, size := range []int{1, 3, 7, 64, len(tc.stream)} {
			var s sseStream
			for p := tc.stream; len(p) > 0; {
				n := min(size, len(p))
				s.write([]byte(p[:n]))
				p = p[n:]
			}
			s.close()
			got, ok := s.usage, s.found
			if !ok || got != tc.want {
				t.Errorf("%s in writes of %d: %+v %v, want %+v", tc.name, size, got, ok, tc.want)
			}
		}
	}
	var s sseStream
	s.write([]byte("data: {\"choices\":[]}\n\ndata: [DONE]\n\n"))
	if s.close(); s.found {
		t.Error("a stream without usage: found one")
	}
}

func TestStreamUsageSkipsHugeLinesAndKeepsGoing(t *testing.T) {
	var s sseStream
	s.write([]byte("data: {\"x\":\"" + strings.Repeat("a", maxLine+10) + "\"}\n"))
	s.write([]byte("data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n"))
	if got, ok := s.usage, s.found; !ok || got.PromptTokens != 1 {
		t.Errorf("after a huge line: %+v %v", got, ok)
	}
	if cap(s.line) > 2*maxLine {
		t.Errorf("line buffer grew to %d", cap(s.line))
	}
}

func TestIncludeStreamUsage(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		changed        bool
	}{
		{"streaming chat", `{"model":"m","stream":true,"messages":[{"role":"user","content":"<b>&</b>"}]}`,
			`{"messages":[{"role":"user","content":"<b>&</b>"}],"model":"m","stream":true,"stream_options":{"include_usage":true}}`, true},
		{"keeps other options", `{"stream":true,"messages":[],"stream_options":{"x":1}}`,
			`{"messages":[],"stream":true,"stream_options":{"include_usage":true,"x":1}}`, true},
		{"false becomes true", `{"stream":true,"messages":[],"stream_options":{"include_usage":false}}`,
			`{"messages":[],"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"already on", `{"stream":true,"messages":[],"stream_options":{"include_usage":true}}`, "", false},
		{"not streaming", `{"messages":[]}`, "", false},
		{"responses api", `{"stream":true,"input":"hi"}`, "", false},
		{"not json", `{"stream":true,`, "", false},
	} {
		got, changed := IncludeStreamUsage([]byte(tc.in))
		if changed != tc.changed {
			t.Errorf("%s: changed %v", tc.name, changed)
		}
		want := tc.want
		if !tc.changed {
			want = tc.in
		}
		if string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, want)
		}
	}
}
