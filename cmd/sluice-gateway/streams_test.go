package main

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/client/llm/llmtest"
)

// heldStream is a backend that holds the last event of every stream until
// release is called.
type heldStream struct {
	once    sync.Once
	release chan struct{}
}

func newHeldStream() *heldStream { return &heldStream{release: make(chan struct{})} }

func (h *heldStream) wait()    { <-h.release }
func (h *heldStream) Release() { h.once.Do(func() { close(h.release) }) }

// startStream posts a streaming chat request and returns the open answer.
func startStream(t *testing.T, g *gw, key string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.url+"/chat/1.0.0/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"tell me a story"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream: %d %s", resp.StatusCode, readAll(t, resp))
	}
	return resp
}

// readUntil reads lines until one contains want; it fails the test after
// the timeout.
func readUntil(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var seen strings.Builder
		for {
			line, err := r.ReadString('\n')
			seen.WriteString(line)
			if strings.Contains(line, want) || err != nil {
				got <- seen.String()
				return
			}
		}
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, want) {
			t.Fatalf("stream ended without %q: %q", want, s)
		}
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("%q did not arrive within 5s: the stream is buffered", want)
		return ""
	}
}

func TestStreamsArriveChunkByChunk(t *testing.T) {
	s := startSluice(t)
	hold := newHeldStream()
	t.Cleanup(hold.Release)
	b := serveBackends(t,
		&llmtest.Backend{Name: "production", Reply: "Once upon a time", BeforeLast: hold.wait},
		&llmtest.Backend{Name: "sandbox"})
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	resp := startStream(t, g, "prod-key-1")
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Header.Get("RateLimit-Limit") == "" {
		t.Error("no RateLimit-Limit on an allowed stream")
	}
	r := bufio.NewReader(resp.Body)
	// The backend is holding its last word: the first ones must be here.
	readUntil(t, r, `"content":" a"`)
	hold.Release()
	rest := readUntil(t, r, "[DONE]")
	if !strings.Contains(rest, `"content":" time"`) {
		t.Errorf("the last word is missing: %q", rest)
	}
	// The gateway asked for the usage (stream_options.include_usage) and
	// took it out again: the client did not ask for it.
	if strings.Contains(rest, "usage") {
		t.Errorf("the stream carries usage the client did not ask for: %q", rest)
	}
	_, _ = io.ReadAll(r)
	resp.Body.Close()
	want := b.prod.Usage([]byte(`{"messages":[{"content":"tell me a story"}]}`))
	if got := charged(t, s, "production"); got.TotalTokens != want.TotalTokens { // production caps total tokens only
		t.Errorf("sluice charged %+v, the backend said %+v", got, want)
	}
}

func TestShutdownDrainsAStreamInFlight(t *testing.T) {
	s := startSluice(t)
	hold := newHeldStream()
	t.Cleanup(hold.Release)
	b := serveBackends(t,
		&llmtest.Backend{Name: "production", Reply: "Once upon a time", BeforeLast: hold.wait},
		&llmtest.Backend{Name: "sandbox"})
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	resp := startStream(t, g, "prod-key-1")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	readUntil(t, r, `"content":" a"`)

	stopped := make(chan error, 1)
	go func() { stopped <- g.stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("run returned with a stream in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	hold.Release()
	readUntil(t, r, "[DONE]")
	if _, err := io.ReadAll(r); err != nil {
		t.Errorf("stream after shutdown began: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after the stream ended")
	}
}
