package llm

import (
	"strings"
	"sync"
	"testing"

	"github.com/sluice-rl/sluice/client"
)

func TestEstimateHeuristicForUnknownModels(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		def  uint64
		want client.Usage
	}{
		{"chat", `{"model":"llama-3","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is a sluice?"}],"max_tokens":50}`, 9,
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
		{"tools count their JSON", `{"messages":[],"tools":[{"type":"function","function":{"name":"abcd"}}]}`, 0,
			client.Usage{PromptTokens: 12}}, // 47 bytes
		{"not json", `hello world!`, 8, client.Usage{PromptTokens: 3, CompletionTokens: 8}},
		{"utf-8 counts bytes", `{"prompt":"日本語"}`, 0, client.Usage{PromptTokens: 3}},
	} {
		if got := Estimate([]byte(tc.body), ByModel, tc.def); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestEstimateCountsTextNotJSON checks that the structure of the body (keys,
// quotes, fields that are not text) does not count, for both methods.
func TestEstimateCountsTextNotJSON(t *testing.T) {
	text := strings.Repeat("word ", 100)
	for _, enc := range []Encoding{Bytes, O200kBase} {
		small := Estimate([]byte(`{"messages":[{"role":"user","content":"`+text+`"}]}`), enc, 0)
		padded := Estimate([]byte(`{"model":"a-very-long-model-name","temperature":0.2,"user":"someone","seed":12345,
		"messages":[{"role":"user","content":"`+text+`"}]}`), enc, 0)
		if padded != small || small.PromptTokens == 0 {
			t.Errorf("%s: estimates %+v and %+v, want the same", enc, small, padded)
		}
	}
}

func TestEstimateChatFormat(t *testing.T) {
	// "hello" is one token in both encodings, "user" and "system" one each.
	for _, tc := range []struct {
		name string
		body string
		want uint64
	}{
		{"one message", `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`, 3 + 1 + 1 + 3},
		{"a name costs its tokens and one more", `{"model":"gpt-4o","messages":[{"role":"user","name":"bob","content":"hello"}]}`, 3 + 1 + 1 + 1 + 1 + 3},
		{"text parts", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"hello"},{"type":"text","text":"hello"}]}]}`, 3 + 1 + 2 + 3},
		{"image low", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png","detail":"low"}}]}]}`, 3 + 1 + 85 + 3},
		{"image by url", `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/a.png"}}]}]}`, 3 + 1 + 1445 + 3},
		{"responses image", `{"model":"gpt-4.1","input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/a.png","detail":"low"}]}]}`, 3 + 1 + 85 + 3},
		{"completions prompt: no chat format", `{"model":"gpt-4o","prompt":"hello"}`, 1},
		{"responses input string", `{"model":"gpt-5","input":"hello"}`, 3 + 1 + 1 + 3},
		{"function call items", `{"model":"gpt-5","input":[{"type":"function_call","name":"f","arguments":"{}","call_id":"c1"},{"type":"function_call_output","call_id":"c1","output":"hello"}]}`,
			(3 + 1 + 1) + (3 + 1 + 1) + 3},
	} {
		if got := Estimate([]byte(tc.body), ByModel, 0).PromptTokens; got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestEstimateCompletionReservation(t *testing.T) {
	for _, tc := range []struct {
		body string
		want uint64
	}{
		{`{"model":"gpt-4o","max_completion_tokens":7,"max_tokens":99,"messages":[]}`, 7},
		{`{"model":"gpt-4o","max_tokens":99,"messages":[]}`, 99},
		{`{"model":"gpt-5","max_output_tokens":33,"input":"x"}`, 33},
		{`{"model":"gpt-4o","messages":[]}`, 256},
		{`{"model":"gpt-4o","max_tokens":10,"n":3,"messages":[]}`, 30},
	} {
		if got := Estimate([]byte(tc.body), ByModel, 256).CompletionTokens; got != tc.want {
			t.Errorf("%s: completion %d, want %d", tc.body, got, tc.want)
		}
	}
}

func TestEstimateEmbedding(t *testing.T) {
	if got := EstimateEmbedding([]byte(`{"model":"text-embedding-3-small","input":["hello","hello hello"]}`), ByModel); got != (client.Usage{PromptTokens: 3}) {
		t.Errorf("embedding: %+v, want 3 prompt tokens", got)
	}
	if got := EstimateEmbedding([]byte(`{"model":"text-embedding-3-small","input":[[1,2,3],[4]]}`), ByModel); got.PromptTokens != 4 {
		t.Errorf("token arrays: %+v, want 4", got)
	}
}

func TestEncodingForModel(t *testing.T) {
	for model, want := range map[string]Encoding{
		"gpt-4o": O200kBase, "gpt-4o-mini-2024-07-18": O200kBase, "chatgpt-4o-latest": O200kBase, "gpt-4.1-nano": O200kBase,
		"gpt-5": O200kBase, "gpt-5-mini": O200kBase, "o1": O200kBase, "o3-pro": O200kBase, "o4-mini": O200kBase, "gpt-oss-120b": O200kBase,
		"ft:gpt-4o-mini-2024-07-18:acme::abc": O200kBase, "openai/gpt-4o": O200kBase, "GPT-4o": O200kBase,
		"gpt-4": Cl100kBase, "gpt-4-turbo": Cl100kBase, "gpt-3.5-turbo-0125": Cl100kBase, "gpt-35-turbo": Cl100kBase,
		"text-embedding-3-large": Cl100kBase, "ft:gpt-3.5-turbo:acme::x": Cl100kBase,
		"": Bytes, "llama-3.1-70b": Bytes, "o10": Bytes, "claude-sonnet-4": Bytes, "gpt-4x": Bytes,
	} {
		if got := EncodingForModel(model); got != want {
			t.Errorf("%q: %s, want %s", model, got, want)
		}
	}
	if _, err := ParseEncoding("p50k"); err == nil || !strings.Contains(err.Error(), "encoding") {
		t.Errorf("bad encoding: %v", err)
	}
}

func TestImageTiles(t *testing.T) {
	// The vision guide's examples: 1024×1024 costs 765, 2048×4096 1105.
	for _, tc := range []struct {
		w, h int
		want uint64
	}{{1024, 1024, 4}, {2048, 4096, 6}, {4096, 8192, 6}, {100, 100, 1}, {768, 2048, 8}, {1024, 600, 4}} {
		if got := imageTiles(tc.w, tc.h); got != tc.want {
			t.Errorf("%dx%d: %d tiles, want %d", tc.w, tc.h, got, tc.want)
		}
	}
}

// TestEstimateIsSafeForConcurrentUse runs estimates in parallel (the codecs
// are shared) and checks they agree with a serial one.
func TestEstimateIsSafeForConcurrentUse(t *testing.T) {
	c := loadCorpus(t)
	want := map[string]uint64{}
	for _, name := range c.names {
		want[name] = Estimate(c.bodies[name], O200kBase, 0).PromptTokens
	}
	errs := make(chan string, 4*len(c.names))
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, name := range c.names {
				if got := Estimate(c.bodies[name], O200kBase, 0).PromptTokens; got != want[name] {
					errs <- name
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for name := range errs {
		t.Errorf("%s: a concurrent estimate differs", name)
	}
}
