package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

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
