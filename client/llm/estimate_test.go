package llm

import (
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/client"
)

func TestEstimate(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		def  uint64
		want client.Usage
	}{
		{"chat", `{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is a sluice?"}],"max_tokens":50}`, 9,
			// 8+17 = 25 bytes -> 7 tokens, + 2 messages x 4
			client.Usage{PromptTokens: 15, CompletionTokens: 50}},
		{"chat parts", `{"messages":[{"role":"user","content":[{"type":"text","text":"abcdefgh"},{"type":"image_url","image_url":{"url":"http://x"}}]}],"max_completion_tokens":7,"max_tokens":99}`, 9,
			client.Usage{PromptTokens: 2 + 4, CompletionTokens: 7}},
		{"default completion", `{"messages":[{"role":"user","content":"abcd"}]}`, 256,
			client.Usage{PromptTokens: 1 + 4, CompletionTokens: 256}},
		{"n choices", `{"messages":[{"role":"user","content":"abcd"}],"max_tokens":10,"n":3}`, 0,
			client.Usage{PromptTokens: 5, CompletionTokens: 30}},
		{"responses string", `{"input":"abcdefghijkl","instructions":"abcd","max_output_tokens":20}`, 0,
			client.Usage{PromptTokens: 4, CompletionTokens: 20}},
		{"responses items", `{"input":[{"role":"user","content":[{"type":"input_text","text":"abcdefgh"}]}]}`, 5,
			client.Usage{PromptTokens: 2 + 4, CompletionTokens: 5}},
		{"completions", `{"prompt":["abcd","efgh"],"max_tokens":3}`, 0,
			client.Usage{PromptTokens: 2, CompletionTokens: 3}},
		{"not json", `hello world!`, 8, client.Usage{PromptTokens: 3, CompletionTokens: 8}},
		{"utf-8 counts bytes", `{"prompt":"日本語"}`, 0, client.Usage{PromptTokens: 3}},
	} {
		if got := Estimate([]byte(tc.body), tc.def); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestEstimateCountsTextNotJSON checks that the structure of the body (keys,
// roles, quotes) does not count: only the text does, plus the template.
func TestEstimateCountsTextNotJSON(t *testing.T) {
	text := strings.Repeat("word ", 100) // 500 bytes
	small := Estimate([]byte(`{"messages":[{"role":"user","content":"`+text+`"}]}`), 0)
	padded := Estimate([]byte(`{"model":"a-very-long-model-name","temperature":0.2,"user":"someone",
		"messages":[{"role":"user","content":"`+text+`","name":"a-name-that-is-not-text"}]}`), 0)
	if small.PromptTokens != 125+4 || padded != small {
		t.Errorf("estimates %+v and %+v, want 129 prompt tokens for both", small, padded)
	}
}
