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
// requests, puts the (possibly rewritten) body back and returns the estimate
// and the Measure of the answer. It also drops Accept-Encoding so that the
// answer arrives readable.
func (m *Meter) Estimate(r *http.Request) (client.Usage, client.Measure, error) {
	r.Header.Del("Accept-Encoding")
	c := &call{max: m.maxBody(), enc: Bytes}
	if r.Body == nil || r.Body == http.NoBody {
		return client.Usage{}, c.measure, nil // not a model call (e.g. GET /v1/models): nothing to reserve
	}
	limit := m.maxBody()
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		c.est = client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: m.DefaultCompletion}
		return c.est, c.measure, fmt.Errorf("read request body: %w", err)
	}
	if len(body) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		c.est = client.Usage{PromptTokens: tokens(len(body)), CompletionTokens: m.DefaultCompletion}
		return c.est, c.measure, errors.New("request body larger than the meter's max body: estimated from its start")
	}
	_ = r.Body.Close()
	if out, changed := IncludeStreamUsage(body); changed {
		body, c.filter = out, true
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		c.est, c.enc = estimate(body, m.Encoding, 0, true)
	} else {
		c.est, c.enc = estimate(body, m.Encoding, m.DefaultCompletion, false)
	}
	return c.est, c.measure, nil
}

// call is what the Meter knows of one call between its estimate and its
// answer.
type call struct {
	max    int
	est    client.Usage
	enc    Encoding // counts what the backend produced
	filter bool     // the Meter turned include_usage on: take it out of the stream
}

// measure wraps w so that the answer passes through — a stream flushed
// after every write, without what the Meter added to it — while what the
// call used is found.
func (c *call) measure(w http.ResponseWriter) (http.ResponseWriter, func() client.Used) {
	mw := &measured{ResponseWriter: w, rc: http.NewResponseController(w), call: c}
	mw.sse.filter = c.filter
	return mw, mw.used
}

// measured is a ResponseWriter that watches what passes through.
type measured struct {
	http.ResponseWriter
	rc      *http.ResponseController
	call    *call
	status  int // 0 until the answer's header is written
	stream  bool
	sse     sseStream
	body    []byte
	tooLong bool
}

func (m *measured) WriteHeader(code int) {
	if m.status == 0 && code >= 200 {
		m.status = code
		mt, _, _ := mime.ParseMediaType(m.Header().Get("Content-Type"))
		m.stream = mt == "text/event-stream"
		if m.stream && m.sse.filter {
			m.Header().Del("Content-Length") // the stream is edited
		}
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *measured) Write(p []byte) (int, error) {
	if m.status == 0 {
		m.WriteHeader(http.StatusOK)
	}
	if m.stream {
		out := m.sse.write(p)
		if len(out) == 0 {
			return len(p), nil
		}
		_, err := m.ResponseWriter.Write(out)
		if err == nil {
			_ = m.rc.Flush()
		}
		return len(p), err
	}
	switch {
	case m.tooLong:
	case len(m.body)+len(p) > m.call.max:
		m.body, m.tooLong = nil, true
	default:
		m.body = append(m.body, p...)
	}
	return m.ResponseWriter.Write(p)
}

// Flush sends what is buffered to the caller.
func (m *measured) Flush() { _ = m.rc.Flush() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (m *measured) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// used is what the call used: the usage the backend stated; else nothing
// when the backend produced nothing (an error status, or no answer at all);
// else the prompt estimate and the completion tokens of the text it
// generated (a stream cut off, a backend that reports no usage).
func (m *measured) used() client.Used {
	if m.stream {
		if rest := m.sse.close(); len(rest) > 0 {
			_, _ = m.ResponseWriter.Write(rest)
			_ = m.rc.Flush()
		}
		if u, ok := m.sse.usage, m.sse.found; ok {
			return client.Used{Usage: u, Stated: true}
		}
	} else if !m.tooLong && len(m.body) > 0 {
		if u, ok := UsageFromJSON(m.body); ok {
			return client.Used{Usage: u, Stated: true}
		}
	}
	if m.status == 0 || m.status >= 400 {
		return client.Used{}
	}
	if m.tooLong {
		return client.Used{Usage: m.call.est} // cannot count what went by
	}
	text := &m.sse.text
	if !m.stream {
		text = &produced{}
		text.addGenerated(m.body)
	}
	return client.Used{Usage: client.Usage{PromptTokens: m.call.est.PromptTokens, CompletionTokens: text.tokens(m.call.enc)}}
}

var _ client.Meter = (*Meter)(nil)
