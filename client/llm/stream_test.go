package llm

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/client"
	"github.com/sluice-rl/sluice/client/llm/llmtest"
)

// openAIChunk is a chunk the way api.openai.com writes it, usage last.
func openAIChunk(choices, usage string) string {
	s := `{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":` + choices
	if usage != "" {
		s += `,"usage":` + usage
	}
	return "data: " + s + "}\n\n"
}

// openAIStream is a stream of Hello there, with and without include_usage.
func openAIStream(includeUsage bool) string {
	null := ""
	if includeUsage {
		null = "null"
	}
	s := openAIChunk(`[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`, null) +
		openAIChunk(`[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]`, null) +
		openAIChunk(`[{"index":0,"delta":{"content":" \"usage\":null there"},"logprobs":null,"finish_reason":null}]`, null) +
		openAIChunk(`[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`, null)
	if includeUsage {
		s += openAIChunk(`[]`, `{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}}`)
	}
	return s + "data: [DONE]\n\n"
}

// backendStream is what llmtest.Backend streams for a chat request.
func backendStream(t *testing.T, includeUsage bool) string {
	t.Helper()
	body := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi there"}]}`
	if includeUsage {
		body = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]}`
	}
	rec := httptest.NewRecorder()
	(&llmtest.Backend{}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
	return rec.Body.String()
}

// filtered passes stream through a filtering sseStream in writes of size.
func filtered(stream string, size int) (string, *sseStream) {
	s := &sseStream{filter: true}
	var out strings.Builder
	for p := stream; len(p) > 0; {
		n := min(size, len(p))
		out.Write(s.write([]byte(p[:n])))
		p = p[n:]
	}
	out.Write(s.close())
	return out.String(), s
}

func TestFilterGivesTheStreamWithoutIncludeUsageByteForByte(t *testing.T) {
	for _, tc := range []struct {
		name      string
		with      string
		without   string
		usage     client.Usage
		crlfLines bool
	}{
		{"openai", openAIStream(true), openAIStream(false), client.Usage{PromptTokens: 19, CompletionTokens: 10, TotalTokens: 29}, false},
		{"llmtest", backendStream(t, true), backendStream(t, false), client.Usage{PromptTokens: 5, CompletionTokens: 4, TotalTokens: 9}, false},
		{"crlf", strings.ReplaceAll(openAIStream(true), "\n", "\r\n"), strings.ReplaceAll(openAIStream(false), "\n", "\r\n"),
			client.Usage{PromptTokens: 19, CompletionTokens: 10, TotalTokens: 29}, true},
	} {
		if tc.with == tc.without {
			t.Fatalf("%s: the two streams are the same", tc.name)
		}
		for _, size := range []int{1, 2, 5, 13, 64, 1 << 20} {
			got, s := filtered(tc.with, size)
			if got != tc.without {
				t.Errorf("%s in writes of %d:\n got %q\nwant %q", tc.name, size, got, tc.without)
			}
			if !s.found || s.usage != tc.usage {
				t.Errorf("%s in writes of %d: usage %+v %v, want %+v", tc.name, size, s.usage, s.found, tc.usage)
			}
		}
	}
}

func TestFilterPassesEventsAsSoonAsTheyAreComplete(t *testing.T) {
	s := &sseStream{filter: true}
	first := openAIChunk(`[{"index":0,"delta":{"content":"Hi"}}]`, "null")
	if out := string(s.write([]byte(first[:len(first)-1]))); out != "" {
		t.Errorf("half an event passed: %q", out)
	}
	if out := string(s.write([]byte("\n"))); out != openAIChunk(`[{"index":0,"delta":{"content":"Hi"}}]`, "") {
		t.Errorf("the completed event: %q", out)
	}
}

func TestFilterGivesUpOnHugeEventsAndPassesThemWhole(t *testing.T) {
	huge := "data: {\"choices\":[{\"delta\":{\"content\":\"" + strings.Repeat("a", maxLine+10) + "\"}}],\"usage\":null}\n\n"
	stream := huge + openAIChunk(`[]`, `{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}`)
	got, s := filtered(stream, 4096)
	if got != stream {
		t.Errorf("a stream with a huge event came out as %d bytes, want it unchanged (%d)", len(got), len(stream))
	}
	if !s.found || s.usage.TotalTokens != 3 {
		t.Errorf("usage after a huge event: %+v %v", s.usage, s.found)
	}
}

func TestDropMember(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"usage":null}`, `{"a":1}`},
		{`{"usage":null,"a":1}`, `{"a":1}`},
		{`{"usage":null}`, `{}`},
		{`{ "a" : [1,{"usage":2}] , "usage" : {"x":"}"} , "b":"\"usage\""}`, `{ "a" : [1,{"usage":2}] , "b":"\"usage\""}`},
		{`{"a":"usage"}`, `{"a":"usage"}`},
		{`[1]`, `[1]`},
		{`{"a":`, `{"a":`},
	} {
		if got, _ := dropMember([]byte(tc.in), "usage"); string(got) != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// serveMetered answers one request through the Meter in front of backend,
// and returns the answer and what the Meter found.
func serveMetered(t *testing.T, m *Meter, backend http.Handler, body string) (string, client.Used) {
	t.Helper()
	used := make(chan client.Used, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, measure, err := m.Estimate(r)
		if err != nil {
			t.Error(err)
		}
		mw, u := measure(w)
		defer func() { used <- u() }()
		backend.ServeHTTP(mw, r)
	}))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	srv.Client().CloseIdleConnections()
	return string(raw), <-used
}

func TestMeterReadsUsageItAskedForAndRemovesIt(t *testing.T) {
	b := &llmtest.Backend{}
	const asked = `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi there"}]}`
	const notAsked = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi there"}]}`
	got, used := serveMetered(t, &Meter{}, b, notAsked)
	if got != backendStream(t, false) {
		t.Errorf("not asked: the client got\n%q\nwant the stream without include_usage\n%q", got, backendStream(t, false))
	}
	if want := b.Usage([]byte(notAsked)); !used.Stated || used.Usage != want {
		t.Errorf("not asked: used %+v, want %+v stated", used, want)
	}
	got, used = serveMetered(t, &Meter{}, b, asked)
	if got != backendStream(t, true) {
		t.Errorf("asked: the client got\n%q\nwant the backend's stream unchanged", got)
	}
	if !used.Stated || used.Usage.TotalTokens == 0 {
		t.Errorf("asked: used %+v", used)
	}
}

func TestMeterCountsWhatWasProducedWhenNoUsageIsStated(t *testing.T) {
	const reply = "Hello from the backend" // 4 tokens in o200k_base
	const body = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi there"}]}`
	prompt := Estimate([]byte(body), ByModel, 0).PromptTokens
	// A backend that ignores include_usage, streaming and not.
	_, used := serveMetered(t, &Meter{}, &llmtest.Backend{Reply: reply, OmitUsage: true}, body)
	if want := (client.Usage{PromptTokens: prompt, CompletionTokens: 4}); used.Stated || used.Usage != want {
		t.Errorf("stream without usage: %+v, want %+v counted", used, want)
	}
	_, used = serveMetered(t, &Meter{}, &llmtest.Backend{Reply: reply, OmitUsage: true}, strings.Replace(body, `"stream":true,`, "", 1))
	if want := (client.Usage{PromptTokens: prompt, CompletionTokens: 4}); used.Stated || used.Usage != want {
		t.Errorf("json without usage: %+v, want %+v counted", used, want)
	}
	// An error before any generation: nothing.
	reject := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":{"message":"bad","type":"invalid_request_error"}}`)
	})
	if _, used = serveMetered(t, &Meter{DefaultCompletion: 100}, reject, body); used != (client.Used{}) {
		t.Errorf("400: %+v, want nothing", used)
	}
	// No answer at all (the proxy gave up before the backend answered).
	silent := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if _, used = serveMetered(t, &Meter{DefaultCompletion: 100}, silent, body); used != (client.Used{}) {
		t.Errorf("no answer: %+v, want nothing", used)
	}
}
