package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/client"
)

// fixedMeter estimates every call the same and finds the usage it is told.
type fixedMeter struct {
	est   client.Usage
	found *client.Usage
}

func (m fixedMeter) Estimate(*http.Request) (client.Usage, error) { return m.est, nil }

func (m fixedMeter) Measure(w http.ResponseWriter, _ *http.Request) (http.ResponseWriter, func() (client.Usage, bool)) {
	return w, func() (client.Usage, bool) {
		if m.found == nil {
			return client.Usage{}, false
		}
		return *m.found, true
	}
}

func guarded(t *testing.T, c *client.Client, cfg client.MiddlewareConfig, next http.Handler) http.Handler {
	t.Helper()
	guard, err := c.Middleware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return guard(next)
}

func TestMiddlewareRefusesOverLimitWithoutTheBackend(t *testing.T) {
	f := &fakeSluice{limit: 1}
	c := newClient(t, startFake(t, f))
	calls := 0
	h := guarded(t, c, client.MiddlewareConfig{Domain: "apim", API: "PizzaShackAPI", Version: "1.0.0"},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++; _, _ = io.WriteString(w, "ok") }))

	sandboxCtx := client.WithEnvironment(context.Background(), client.Sandbox)
	for i, want := range []int{200, 503} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/menu", nil).WithContext(sandboxCtx))
		if rec.Code != want {
			t.Fatalf("call %d: %d, want %d", i+1, rec.Code, want)
		}
		if rec.Header().Get("RateLimit-Limit") != "1" {
			t.Errorf("call %d: headers %v", i+1, rec.Header())
		}
		if want == 503 && (rec.Body.String() != client.DefaultOverLimitBody || rec.Header().Get("Retry-After") != "42" ||
			rec.Header().Get("Content-Type") != "application/json") {
			t.Errorf("refusal: %v %q", rec.Header(), rec.Body.String())
		}
	}
	if calls != 1 {
		t.Errorf("backend called %d times, want 1", calls)
	}
	// Production is another descriptor with its own count.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/menu", nil))
	if rec.Code != 200 {
		t.Errorf("production: %d", rec.Code)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used["api=PizzaShackAPI:1.0.0,environment=sandbox"] != 1 || f.used["api=PizzaShackAPI:1.0.0,environment=production"] != 1 {
		t.Errorf("counts %v", f.used)
	}
}

func TestMiddlewareReportsTheEstimateWhenUsageIsMissing(t *testing.T) {
	f := &fakeSluice{limit: 100, reserve: true}
	c := newClient(t, startFake(t, f))
	est := client.Usage{PromptTokens: 7, CompletionTokens: 100}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	cfg := client.MiddlewareConfig{Domain: "apim", API: "ChatAPI", Version: "1.0.0", Meter: fixedMeter{est: est}}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))

	found := client.Usage{PromptTokens: 5, CompletionTokens: 9}
	cfg.Meter = fixedMeter{est: est, found: &found}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))

	// A handler that aborts (as a reverse proxy does on a broken stream)
	// still reports.
	cfg.Meter = fixedMeter{est: est}
	abort := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	func() {
		defer func() { _ = recover() }()
		guarded(t, c, cfg, abort).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))
	}()

	// Nothing estimated and nothing found: nothing to report.
	cfg.Meter = fixedMeter{}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/models", nil))

	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps := f.reported()
	if len(reps) != 3 {
		t.Fatalf("%d reports, want 3", len(reps))
	}
	if u := reps[0].GetUsage(); u.GetPromptTokens() != 7 || u.GetCompletionTokens() != 100 {
		t.Errorf("missing usage reported as %v, want the estimate", u)
	}
	if u := reps[1].GetUsage(); u.GetPromptTokens() != 5 || u.GetCompletionTokens() != 9 {
		t.Errorf("found usage reported as %v", u)
	}
	if u := reps[2].GetUsage(); u.GetCompletionTokens() != 100 {
		t.Errorf("aborted call reported as %v, want the estimate", u)
	}
	if got := c.Stats().UsageMissing; got != 2 {
		t.Errorf("usage missing %d, want 2", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.estimates[0]; e.GetPromptTokens() != 7 || e.GetCompletionTokens() != 100 {
		t.Errorf("estimate sent %v", e)
	}
}

func TestMiddlewareNeedsADomainAndDescriptors(t *testing.T) {
	c := newClient(t, refused(t))
	if _, err := c.Middleware(client.MiddlewareConfig{API: "A", Version: "1"}); err == nil {
		t.Error("no domain: no error")
	}
	if _, err := c.Middleware(client.MiddlewareConfig{Domain: "apim"}); err == nil {
		t.Error("no api and no descriptors: no error")
	}
}
