package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-rl/sluice/client/llm/llmtest"
	"github.com/sluice-rl/sluice/internal/leakcheck"
	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// limits caps PizzaShackAPI (rest) in requests and ChatAPI (ai) in tokens,
// per minute so that no test races the clock.
const limits = `
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - {key: environment, value: production, rate_limit: {window: 1m, requests: 5}}
      - {key: environment, value: sandbox, rate_limit: {window: 1m, requests: 3}}
  - key: api
    value: ChatAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 1m, requests: 1000}
        token_limit: {window: 1m, total_tokens: 100}
      - key: environment
        value: sandbox
        rate_limit: {window: 1m, requests: 1000}
        token_limit: {window: 1m, total_tokens: 100000, prompt_tokens: 100000, completion_tokens: 100000}
  - key: api
    value: TinyAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 1m, requests: 1}
        token_limit: {window: 1m, total_tokens: 100000}
  - key: api
    value: ShareAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 1m, requests: 3}       # the backend cap
        descriptors:
          - key: consumer                           # each consumer its own count
            rate_limit: {window: 1m, requests: 2}
`

// faultBody is the exact answer over limit.
const faultBody = `{"fault":{"code":900801,"message":"API Limit Reached","description":"API not accepting requests"}}`

// sluice is one running Sluice service on its own redis-server.
type sluice struct {
	srv  *sluicetest.Server
	stop func() // stops it now; the test's end reports how Run returned
}

// startSluice runs Sluice with limits on a fresh redis-server until the test
// ends.
func startSluice(t *testing.T) *sluice {
	t.Helper()
	rs := redistest.New(t)
	path := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(path, []byte(limits), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := sluicetest.Start(t, server.Config{
		ConfigPath:        path,
		RedisURL:          rs.URL(),
		ReadinessInterval: 50 * time.Millisecond,
		DrainTimeout:      time.Second,
	})
	sluicetest.WaitReady(t, http.DefaultClient, "http://"+srv.HTTPAddr()+"/readyz", true)
	return &sluice{srv: srv, stop: func() { _ = srv.Stop() }}
}

// api is a raw gRPC client of s, for looking at usage the way an operator
// would.
func (s *sluice) api(t *testing.T) sluicev1.RateLimitServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(s.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return sluicev1.NewRateLimitServiceClient(conn)
}

// backends are the fake production and sandbox servers of both APIs.
type backends struct {
	prod, sandbox       *llmtest.Backend
	prodURL, sandboxURL string
}

func startBackends(t *testing.T) *backends {
	t.Helper()
	return serveBackends(t, &llmtest.Backend{Name: "production"}, &llmtest.Backend{Name: "sandbox"})
}

// serveBackends serves prod and sandbox on loopback until the test ends.
func serveBackends(t *testing.T, prod, sandbox *llmtest.Backend) *backends {
	t.Helper()
	b := &backends{prod: prod, sandbox: sandbox}
	ps, ss := httptest.NewServer(b.prod), httptest.NewServer(b.sandbox)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)
	b.prodURL, b.sandboxURL = ps.URL, ss.URL
	return b
}

// gatewayConfig is the config shape with the test's addresses. Its
// check timeout is 2s, so that a loaded machine running the suite with -race
// does not fail calls; the tests of the timeout itself set 50ms.
func gatewayConfig(sluiceAddr, failureMode string, b *backends) string {
	return fmt.Sprintf(`
listen: 127.0.0.1:0
sluice: %s
domain: apim
failure_mode: %s
timeout: 2s
drain_timeout: 5s
metrics_listen: 127.0.0.1:0
default_max_tokens: 16
apis:
  - name: ChatAPI
    version: 1.0.0
    context: /chat/1.0.0
    type: ai
    production: %s
    sandbox: %s
  - name: PizzaShackAPI
    version: 1.0.0
    context: /pizzashack/1.0.0
    type: rest
    production: %s
    sandbox: %s
keys:
  - {key: prod-key-1, type: production}
  - {key: sandbox-key-1, type: sandbox}
`, sluiceAddr, failureMode, b.prodURL, b.sandboxURL, b.prodURL, b.sandboxURL)
}

// withAPI adds an ai API TinyAPI (1 call a minute in production) at
// /tiny/1.0.0 to a gateway config, with the extra YAML fields given (e.g.
// "error_format: openai").
func withAPI(config string, b *backends, fields ...string) string {
	return withAPIAt(config, b.prodURL, fields...)
}

// withAPIAt is withAPI with TinyAPI's production backend at url.
func withAPIAt(config, url string, fields ...string) string {
	api := "apis:\n  - name: TinyAPI\n    version: 1.0.0\n    context: /tiny/1.0.0\n    type: ai\n    production: " + url + "\n"
	for _, f := range fields {
		api += "    " + f + "\n"
	}
	return strings.Replace(config, "apis:\n", api, 1)
}

// gw is one sluice-gateway started through run.
type gw struct {
	url     string
	metrics string // with metrics_listen
	stop    func() error
}

// startGateway runs the gateway with the config text until the test ends.
func startGateway(t *testing.T, config string) *gw {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"--config", path}, func(string) string { return "" }, pw, logWriter{t})
		_ = pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	}
	addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		cancel()
		t.Fatalf("gateway said %q", line)
	}
	addr, metrics, _ := strings.Cut(addrs, ", metrics on ")
	var stopped bool
	var stopErr error
	g := &gw{url: "http://" + addr, metrics: "http://" + metrics}
	g.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			stopErr = <-done
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("gateway run: %v", err)
		}
	})
	return g
}

// answer is one HTTP exchange through the gateway.
type answer struct {
	status int
	header http.Header
	body   string
	took   time.Duration
}

// call sends method path with the key (as a bearer token) and body.
func call(t *testing.T, g *gw, method, path, key, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = true // no idle connections left for goleak
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(raw), took: time.Since(start)}
}

// logWriter sends the gateway's log to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
