package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/sluice-rl/sluice/client"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// The official Go SDK against the gateway: what it returns to its caller,
// and what Sluice charged. (openai-go is a test dependency only: it never
// reaches the sluice-gateway binary.)

// sdk is an openai-go client of the gateway's ChatAPI with key, no retries
// unless the test asks for them.
func sdk(g *gw, key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(g.url + "/chat/1.0.0/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}),
	}, opts...)...)
}

func chatParams(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:     "gpt-4o",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
		MaxTokens: openai.Int(8),
	}
}

// charged is what Sluice counts for ChatAPI in env once every report is in.
func charged(t *testing.T, s *sluice, env string) client.Usage {
	t.Helper()
	got := settled(t, s.api(t), env)
	return client.Usage{PromptTokens: got[sluicev1.LimitKind_PROMPT_TOKENS], CompletionTokens: got[sluicev1.LimitKind_COMPLETION_TOKENS],
		TotalTokens: got[sluicev1.LimitKind_TOTAL_TOKENS]}
}

func TestSDKCompletion(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	c := sdk(g, "sandbox-key-1")
	res, err := c.Chat.Completions.New(context.Background(), chatParams("what is a sluice?"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "Hello from the backend" {
		t.Errorf("content %q", got)
	}
	want := b.sandbox.Usage([]byte(`{"messages":[{"content":"what is a sluice?"}]}`))
	if res.Usage.PromptTokens != int64(want.PromptTokens) || res.Usage.CompletionTokens != int64(want.CompletionTokens) {
		t.Errorf("the SDK saw usage %+v, the backend said %+v", res.Usage, want)
	}
	if got := charged(t, s, "sandbox"); got != want {
		t.Errorf("sluice charged %+v, the backend said %+v", got, want)
	}
}

// sdkStream reads a whole stream with the SDK and returns its chunks.
func sdkStream(t *testing.T, c *openai.Client, params openai.ChatCompletionNewParams) []openai.ChatCompletionChunk {
	t.Helper()
	stream := c.Chat.Completions.NewStreaming(context.Background(), params)
	defer stream.Close()
	var chunks []openai.ChatCompletionChunk
	for stream.Next() {
		chunks = append(chunks, stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return chunks
}

func TestSDKStreamWithoutIncludeUsageGetsNoUsage(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	c := sdk(g, "sandbox-key-1")
	chunks := sdkStream(t, &c, chatParams("and a gate?"))
	var text strings.Builder
	for i, c := range chunks {
		// The common loop reads chunk.choices[0]: every chunk must have one.
		if len(c.Choices) == 0 {
			t.Fatalf("chunk %d has no choices: %s", i, c.RawJSON())
		}
		if c.JSON.Usage.Raw() != "" {
			t.Errorf("chunk %d carries usage %s the client did not ask for", i, c.JSON.Usage.Raw())
		}
		text.WriteString(c.Choices[0].Delta.Content)
	}
	if text.String() != "Hello from the backend" {
		t.Errorf("streamed %q", text.String())
	}
	// The gateway still read the usage for itself.
	want := b.sandbox.Usage([]byte(`{"messages":[{"content":"and a gate?"}]}`))
	if got := charged(t, s, "sandbox"); got != want {
		t.Errorf("sluice charged %+v, the backend said %+v", got, want)
	}
}

func TestSDKStreamWithIncludeUsageGetsIt(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	params := chatParams("and a weir?")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	c := sdk(g, "sandbox-key-1")
	chunks := sdkStream(t, &c, params)
	last := chunks[len(chunks)-1]
	want := b.sandbox.Usage([]byte(`{"messages":[{"content":"and a weir?"}]}`))
	if len(last.Choices) != 0 || last.Usage.TotalTokens != int64(want.TotalTokens) {
		t.Errorf("last chunk %s, want the usage chunk of %+v", last.RawJSON(), want)
	}
	if got := charged(t, s, "sandbox"); got != want {
		t.Errorf("sluice charged %+v, the backend said %+v", got, want)
	}
}

// TestStreamBytesAreTheBackendsWithoutIncludeUsage compares the raw bytes
// the gateway sends a client that did not ask for usage with what the
// backend itself sends that request.
func TestStreamBytesAreTheBackendsWithoutIncludeUsage(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	const body = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}`
	direct, err := http.Post(b.sandboxURL+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := readAll(t, direct)
	a := call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "sandbox-key-1", body)
	if a.status != http.StatusOK || a.body != want {
		t.Errorf("through the gateway: %d\n%q\nthe backend alone:\n%q", a.status, a.body, want)
	}
	if strings.Contains(a.body, "usage") {
		t.Errorf("the stream mentions usage: %q", a.body)
	}
	_ = io.Discard
}

// tinySDK is an openai-go client of TinyAPI with key and no retries.
func tinySDK(g *gw, key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{
		option.WithBaseURL(g.url + "/tiny/1.0.0/v1/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}),
	}, opts...)...)
}

// tinyCharged is what Sluice counts for TinyAPI in production once every
// report is in: tokens, and the requests counted.
func tinyCharged(t *testing.T, s *sluice) (tokens, requests uint64) {
	t.Helper()
	api := s.api(t)
	d := &sluicev1.Descriptor{Entries: []*sluicev1.Entry{{Key: "api", Value: "TinyAPI:1.0.0"}, {Key: "environment", Value: "production"}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := api.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{d}})
		if err != nil {
			t.Fatal(err)
		}
		var reserved uint64
		for _, l := range resp.GetDescriptors()[0].GetLimits() {
			reserved += l.GetReserved()
			switch l.GetLimit().GetKind() {
			case sluicev1.LimitKind_TOTAL_TOKENS:
				tokens = l.GetUsed()
			case sluicev1.LimitKind_REQUESTS:
				requests = l.GetUsed()
			}
		}
		if reserved == 0 {
			return tokens, requests
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tokens still reserved after 5s", reserved)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSDKRefusalInEachErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fields  []string
		status  int
		message string // what the SDK's Error.Message says
		code    string
	}{
		// The SDK cannot read the wso2 fault: an empty message, the body raw.
		{"wso2", nil, http.StatusServiceUnavailable, "", ""},
		{"openai 429", []string{"error_format: openai", "refusal_status: 429"}, http.StatusTooManyRequests,
			"API Limit Reached: API not accepting requests (1 requests per 1m0s; retry after", "900801"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSluice(t)
			b := startBackends(t)
			g := startGateway(t, withAPI(gatewayConfig(s.srv.GRPCAddr(), "closed", b), b, tc.fields...))
			c := tinySDK(g, "prod-key-1")
			if _, err := c.Chat.Completions.New(context.Background(), chatParams("first")); err != nil {
				t.Fatalf("first call: %v", err)
			}
			_, err := c.Chat.Completions.New(context.Background(), chatParams("second"))
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("second call: %v, want an *openai.Error", err)
			}
			if apiErr.StatusCode != tc.status || !strings.HasPrefix(apiErr.Message, tc.message) || apiErr.Code != tc.code {
				t.Errorf("the SDK returned status %d, message %q, code %q; want %d, %q…, %q", apiErr.StatusCode, apiErr.Message, apiErr.Code,
					tc.status, tc.message, tc.code)
			}
			if body := string(apiErr.DumpResponse(true)); tc.code == "" && !strings.Contains(body, `"code":900801`) {
				t.Errorf("wso2 answer %s", body)
			}
			if tc.code != "" && apiErr.Type != "requests" {
				t.Errorf("type %q, want requests", apiErr.Type)
			}
			if ra := apiErr.Response.Header.Get("Retry-After"); ra == "" {
				t.Error("no Retry-After")
			}
			// Sluice charged the first call only, and the backend saw only it.
			tokens, requests := tinyCharged(t, s)
			if want := b.prod.Usage([]byte(`{"messages":[{"content":"first"}]}`)).Total(); tokens != want || requests != 1 {
				t.Errorf("sluice charged %d tokens and %d requests, want %d and 1", tokens, requests, want)
			}
			if n := b.prod.Calls(); n != 1 {
				t.Errorf("the backend saw %d calls", n)
			}
		})
	}
}

func TestSDKOutageIsNotACap(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, withAPI(gatewayConfig(s.srv.GRPCAddr(), "closed", b), b, "error_format: openai", "refusal_status: 429"))
	s.stop()
	c := tinySDK(g, "prod-key-1")
	_, err := c.Chat.Completions.New(context.Background(), chatParams("hello"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("%v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != http.StatusServiceUnavailable || apiErr.Code != "900810" || apiErr.Type != "server_error" ||
		!strings.Contains(apiErr.Message, "could not be checked") {
		t.Errorf("the SDK returned %d %q %q %q, want 503 900810 server_error", apiErr.StatusCode, apiErr.Code, apiErr.Type, apiErr.Message)
	}
	if got := apiErr.Response.Header.Get("X-Sluice-Decision"); got != "unavailable" {
		t.Errorf("X-Sluice-Decision %q", got)
	}
	if n := b.prod.Calls(); n != 0 {
		t.Errorf("the backend saw %d calls", n)
	}
}
