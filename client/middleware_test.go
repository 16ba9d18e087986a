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

// fixedMeter estimates every call the same and finds what it is told.
type fixedMeter struct {
	est  client.Usage
	used client.Used
}

func (m fixedMeter) Estimate(*http.Request) (client.Usage, client.Measure, error) {
	return m.est, func(w http.ResponseWriter) (http.ResponseWriter, func() client.Used) {
		return w, func() client.Used { return m.used }
	}, nil
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

func TestMiddlewareReportsWhatTheMeterFound(t *testing.T) {
	f := &fakeSluice{limit: 100, reserve: true}
	c := newClient(t, startFake(t, f))
	est := client.Usage{PromptTokens: 7, CompletionTokens: 100}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	post := func() *http.Request { return httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")) }

	// Stated by the backend.
	cfg := client.MiddlewareConfig{Domain: "apim", API: "ChatAPI", Version: "1.0.0",
		Meter: fixedMeter{est: est, used: client.Used{Usage: client.Usage{PromptTokens: 5, CompletionTokens: 9}, Stated: true}}}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), post())

	// Counted by the meter (a stream cut off): reported, and counted missing.
	cfg.Meter = fixedMeter{est: est, used: client.Used{Usage: client.Usage{PromptTokens: 7, CompletionTokens: 3}}}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), post())

	// Nothing produced (a backend error): zero is reported, so that the
	// reservation is released.
	cfg.Meter = fixedMeter{est: est}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), post())

	// A handler that aborts (as a reverse proxy does on a broken stream)
	// still reports.
	cfg.Meter = fixedMeter{est: est, used: client.Used{Usage: client.Usage{PromptTokens: 7, CompletionTokens: 1}}}
	abort := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	func() {
		defer func() { _ = recover() }()
		guarded(t, c, cfg, abort).ServeHTTP(httptest.NewRecorder(), post())
	}()

	// Nothing estimated and nothing used: nothing to report.
	cfg.Meter = fixedMeter{}
	guarded(t, c, cfg, ok).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/models", nil))

	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	reps := f.reported()
	if len(reps) != 4 {
		t.Fatalf("%d reports, want 4", len(reps))
	}
	for i, want := range []client.Usage{{PromptTokens: 5, CompletionTokens: 9}, {PromptTokens: 7, CompletionTokens: 3}, {}, {PromptTokens: 7, CompletionTokens: 1}} {
		if u := reps[i].GetUsage(); u.GetPromptTokens() != want.PromptTokens || u.GetCompletionTokens() != want.CompletionTokens || reps[i].GetReservationId() == "" {
			t.Errorf("report %d: %v of %q, want %+v with the reservation", i, u, reps[i].GetReservationId(), want)
		}
	}
	if got := c.Stats().UsageMissing; got != 3 {
		t.Errorf("usage missing %d, want 3", got)
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
