package llm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-rl/sluice/client"
)

// Meter is the client.Meter of OpenAI-compatible APIs (Chat Completions,
// Completions, Responses). The zero value is ready to use.
type Meter struct {
	// DefaultCompletion is the completion reservation of a request that sets
	// no max_tokens, max_completion_tokens or max_output_tokens. (Optional,
	// default 0: such a request reserves only its prompt)
	DefaultCompletion uint64
	// Encoding counts the prompt: ByModel picks it from each request's model
	// field (EncodingForModel), which suits OpenAI's own model names; set it
	// for a backend whose model names say nothing (an Azure deployment, a
	// proxy's aliases). (Optional, default ByModel)
	Encoding Encoding
	// MaxBody bounds what is read to estimate a request and to find the
	// usage in a JSON answer; larger bodies pass through, estimated from
	// their first MaxBody bytes. (Optional, default 8 MiB)
	MaxBody int
}

const defaultMaxBody = 8 << 20

func (m *Meter) maxBody() int {
	if m.MaxBody > 0 {
		return m.MaxBody
	}
	return defaultMaxBody
}

// Estimate reads the request body, turns on stream usage for streaming chat
// requests, puts the (possibly rewritten) body back and returns the estimate.
// It also drops Accept-Encoding so that the answer arrives readable.
func (m *Meter) Estimate(r *http.Request) (client.Usage, error) {
	r.Header.Del("Accept-Encoding")
	if r.Body == nil || r.Body == http.NoBody {
		return client.Usage{}, nil // not a model call (e.g. GET /v1/models): nothing to reserve
	}
	limit := m.maxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		return client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: m.DefaultCompletion}, fmt.Errorf("read request body: %w", err)
	}
	if len(body) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		return client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: m.DefaultCompletion},
			errors.New("request body larger than the meter's max body: estimated from its start")
	}
	_ = r.Body.Close()
	if out, changed := IncludeStreamUsage(body); changed {
		body = out
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		return EstimateEmbedding(body, m.Encoding), nil
	}
	return Estimate(body, m.Encoding, m.DefaultCompletion), nil
}

// Measure wraps w so that the answer passes through unchanged — a stream
// flushed after every write — while its usage is found.
func (m *Meter) Measure(w http.ResponseWriter, _ *http.Request) (http.ResponseWriter, func() (client.Usage, bool)) {
	mw := &measured{ResponseWriter: w, rc: http.NewResponseController(w), max: m.maxBody()}
	return mw, mw.usage
}

// measured is a ResponseWriter that watches what passes through.
type measured struct {
	http.ResponseWriter
	rc      *http.ResponseController
	max     int
	wrote   bool
	stream  bool
	sse     StreamUsage
	body    []byte
	tooLong bool
}

func (m *measured) WriteHeader(code int) {
	if !m.wrote && code >= 200 {
		m.wrote = true
		mt, _, _ := mime.ParseMediaType(m.Header().Get("Content-Type"))
		m.stream = mt == "text/event-stream"
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *measured) Write(p []byte) (int, error) {
	if !m.wrote {
		m.WriteHeader(http.StatusOK)
	}
	switch {
	case m.stream:
		_, _ = m.sse.Write(p)
	case m.tooLong:
	case len(m.body)+len(p) > m.max:
		m.body, m.tooLong = nil, true
	default:
		m.body = append(m.body, p...)
	}
	n, err := m.ResponseWriter.Write(p)
	if m.stream && err == nil {
		_ = m.rc.Flush()
	}
	return n, err
}

// Flush sends what is buffered to the caller.
func (m *measured) Flush() { _ = m.rc.Flush() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (m *measured) Unwrap() http.ResponseWriter { return m.ResponseWriter }

func (m *measured) usage() (client.Usage, bool) {
	if m.stream {
		return m.sse.Usage()
	}
	if m.tooLong || len(m.body) == 0 {
		return client.Usage{}, false
	}
	return UsageFromJSON(m.body)
}

var _ client.Meter = (*Meter)(nil)
