package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/client/llm"
)

// Each case of docs/ai-gateway.md's charging table: a call to TinyAPI whose
// backend does one thing, and what Sluice charged for it (GetUsage on a real
// redis-server, once the reservation is reconciled).

const chargeBody = `{"model":"gpt-4o","max_tokens":50,"messages":[{"role":"user","content":"tell me about weirs"}]}`

// chargeStream is chargeBody streaming, without include_usage.
const chargeStream = `{"model":"gpt-4o","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"tell me about weirs"}]}`

// promptEstimate is the gateway's prompt estimate of body.
func promptEstimate(body string) uint64 {
	return llm.Estimate([]byte(body), llm.ByModel, 0).PromptTokens
}

// sse writes one event and flushes it.
func sse(w http.ResponseWriter, data string) {
	_, _ = io.WriteString(w, "data: "+data+"\n\n")
	_ = http.NewResponseController(w).Flush()
}

func TestChargingFollowsWhatTheBackendDid(t *testing.T) {
	s := startSluice(t)
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()
	chunk := func(content string) string {
		return `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"},"finish_reason":null}],"usage":null}`
	}
	for _, tc := range []struct {
		name    string
		backend http.HandlerFunc // nil: connection refused
		body    string
		status  int    // what the caller gets
		charged uint64 // total tokens
		leave   bool   // the caller leaves before the first byte
	}{
		{name: "4xx before any generation", body: chargeBody, status: http.StatusBadRequest, charged: 0,
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":{"message":"Invalid 'messages'","type":"invalid_request_error","param":"messages","code":null}}`)
			}},
		{name: "5xx", body: chargeBody, status: http.StatusInternalServerError, charged: 0,
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = io.WriteString(w, `{"error":{"message":"The server had an error","type":"server_error"}}`)
			}},
		{name: "4xx that states usage", body: chargeBody, status: http.StatusBadRequest, charged: 9,
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"error":{"message":"content filtered"},"usage":{"prompt_tokens":9,"completion_tokens":0,"total_tokens":9}}`)
			}},
		{name: "connection refused", body: chargeBody, status: http.StatusBadGateway, charged: 0},
		{name: "caller gone before the first byte", body: chargeBody, leave: true, charged: 0,
			// The backend holds the call and then breaks it off without a byte
			// (the gateway does not always see the caller leave before the
			// backend answers; see docs/ai-gateway.md).
			backend: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(time.Second):
				}
				panic(http.ErrAbortHandler)
			}},
		{name: "stream cut mid-way, no usage", body: chargeStream, status: http.StatusOK,
			charged: promptEstimate(chargeStream) + 2, // "Hello there": 2 tokens produced
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				sse(w, chunk("Hello"))
				sse(w, chunk(" there"))
				panic(http.ErrAbortHandler) // the connection breaks
			}},
		{name: "stream cut after the usage chunk", body: chargeStream, status: http.StatusOK, charged: 30,
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				sse(w, chunk("Hello"))
				sse(w, `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":18,"total_tokens":30}}`)
				panic(http.ErrAbortHandler)
			}},
		{name: "complete answer without usage", body: chargeBody, status: http.StatusOK,
			charged: promptEstimate(chargeBody) + 2,
			backend: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"}}]}`)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := closedPort
			if tc.backend != nil {
				srv := httptest.NewServer(tc.backend)
				t.Cleanup(srv.Close)
				url = srv.URL
			}
			// A fresh Sluice key space per case: TinyAPI admits 1 call a minute.
			s := s
			if tc.name != "4xx before any generation" {
				s = startSluice(t)
			}
			g := startGateway(t, withAPIAt(gatewayConfig(s.srv.GRPCAddr(), "closed", startBackends(t)), url))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/tiny/1.0.0/v1/chat/completions", strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer prod-key-1")
			req.Close = true
			if tc.leave {
				time.AfterFunc(300*time.Millisecond, cancel) // the backend holds the call: nothing is sent
			}
			resp, err := http.DefaultClient.Do(req)
			switch {
			case tc.leave:
				if err == nil {
					resp.Body.Close()
					t.Fatalf("the caller left, yet got %d", resp.StatusCode)
				}
			case err != nil:
				t.Fatal(err)
			default:
				_, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
				}
			}
			tokens, requests := tinyCharged(t, s)
			if tokens != tc.charged || requests != 1 {
				t.Errorf("sluice charged %d tokens and %d requests, want %d and 1 (estimate was %d + 50)", tokens, requests, tc.charged, promptEstimate(tc.body))
			}
		})
	}
}
