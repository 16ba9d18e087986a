package llm

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-rl/sluice/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMeterRewritesStreamingRequestsAndKeepsTheBodyReadable(t *testing.T) {
	m := &Meter{DefaultCompletion: 64}
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"abcdefgh"}]}`
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	r.Header.Set("Accept-Encoding", "gzip")
	est, _, err := m.Estimate(r)
	if err != nil {
		t.Fatal(err)
	}
	if est != (client.Usage{PromptTokens: 2 + 4, CompletionTokens: 64}) {
		t.Errorf("estimate %+v", est)
	}
	got, _ := io.ReadAll(r.Body)
	var fields map[string]any
	if err := json.Unmarshal(got, &fields); err != nil || fields["stream_options"] == nil {
		t.Fatalf("rewritten body %s: %v", got, err)
	}
	if r.ContentLength != int64(len(got)) || r.Header.Get("Accept-Encoding") != "" {
		t.Errorf("content length %d for %d bytes; accept-encoding %q", r.ContentLength, len(got), r.Header.Get("Accept-Encoding"))
	}
	if again, _ := r.GetBody(); again == nil {
		t.Error("no GetBody")
	} else {
		b, _ := io.ReadAll(again)
		if string(b) != string(got) {
			t.Error("GetBody differs")
		}
	}

	// A body over MaxBody passes through whole.
	m.MaxBody = 16
	long := strings.Repeat("x", 100)
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(long))
	if _, _, err := m.Estimate(r); err == nil {
		t.Error("no error for a body over MaxBody")
	}
	if b, _ := io.ReadAll(r.Body); string(b) != long {
		t.Errorf("long body came out as %d bytes", len(b))
	}

	// No body: nothing to reserve.
	r = httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	if est, _, err := m.Estimate(r); err != nil || !est.IsZero() {
		t.Errorf("no body: %+v %v", est, err)
	}
}

func TestMeterMeasuresJSONAndFlushesStreams(t *testing.T) {
	release := make(chan struct{})
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/json" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"usage":{"prompt_tokens":3,`)
			_, _ = io.WriteString(w, `"completion_tokens":4,"total_tokens":7}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"first\"}}],\"usage\":null}\n\n")
		<-release
		_, _ = io.WriteString(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6,\"total_tokens\":11}}\n\ndata: [DONE]\n\n")
	})
	m := &Meter{}
	found := make(chan client.Usage, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, measure, _ := m.Estimate(r)
		mw, used := measure(w)
		backend.ServeHTTP(mw, r)
		u := used()
		if !u.Stated {
			u.Usage = client.Usage{TotalTokens: 999999}
		}
		found <- u.Usage
	}))
	defer srv.Close()
	defer srv.Client().CloseIdleConnections()

	resp, err := srv.Client().Get(srv.URL + "/json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"total_tokens":7`) {
		t.Errorf("json body %s", b)
	}
	if u := <-found; u != (client.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}) {
		t.Errorf("json usage %+v", u)
	}

	resp, err = srv.Client().Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make(chan string, 1)
	br := bufio.NewReader(resp.Body)
	go func() { line, _ := br.ReadString('\n'); first <- line }()
	select {
	case line := <-first:
		if !strings.Contains(line, "first") {
			t.Errorf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the first chunk was not flushed")
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "[DONE]") {
		t.Errorf("rest %q", rest)
	}
	if u := <-found; u != (client.Usage{PromptTokens: 5, CompletionTokens: 6, TotalTokens: 11}) {
		t.Errorf("stream usage %+v", u)
	}
}
