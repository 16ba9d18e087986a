package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/client"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

func TestRequestCapAnswers503WithTheFaultAndNeverReachesTheBackend(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	for i := 1; i <= 3; i++ {
		a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "sandbox-key-1", "")
		if a.status != http.StatusOK {
			t.Fatalf("call %d: %d %s, want 200", i, a.status, a.body)
		}
		if got, want := a.header.Get("RateLimit-Limit"), "3"; got != want {
			t.Errorf("call %d: RateLimit-Limit %q, want %q", i, got, want)
		}
		if got, want := a.header.Get("RateLimit-Remaining"), strconv.Itoa(3-i); got != want {
			t.Errorf("call %d: RateLimit-Remaining %q, want %q", i, got, want)
		}
		if a.header.Get("RateLimit-Reset") == "" {
			t.Errorf("call %d: no RateLimit-Reset", i)
		}
	}
	a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "sandbox-key-1", "")
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: %d, want 503", a.status)
	}
	if a.body != faultBody {
		t.Errorf("over the cap: body %q, want %q", a.body, faultBody)
	}
	// The earliest moment a call fits again is when the first call's bucket
	// (6 s wide) leaves the 1-minute window: 60-66 s after it, rounded up.
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 59 || ra > 66 {
		t.Errorf("over the cap: Retry-After %q, want 59..66 seconds (the window, up to one bucket more)", a.header.Get("Retry-After"))
	}
	if a.header.Get("RateLimit-Limit") != "3" || a.header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("over the cap: RateLimit-Limit %q Remaining %q, want 3 and 0",
			a.header.Get("RateLimit-Limit"), a.header.Get("RateLimit-Remaining"))
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("over the cap: Content-Type %q", ct)
	}
	if got := b.sandbox.Calls(); got != 3 {
		t.Errorf("sandbox backend saw %d calls, want 3", got)
	}
}

func TestProductionAndSandboxCountSeparately(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	for i := 0; i < 3; i++ {
		call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "sandbox-key-1", "")
	}
	if a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "sandbox-key-1", ""); a.status != http.StatusServiceUnavailable {
		t.Fatalf("sandbox over its cap: %d, want 503", a.status)
	}
	for i := 1; i <= 5; i++ {
		a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", "")
		if a.status != http.StatusOK {
			t.Fatalf("production call %d with sandbox full: %d %s", i, a.status, a.body)
		}
		if got, want := a.header.Get("RateLimit-Remaining"), strconv.Itoa(5-i); got != want {
			t.Errorf("production call %d: RateLimit-Remaining %q, want %q", i, got, want)
		}
	}
	if a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", ""); a.status != http.StatusServiceUnavailable || a.body != faultBody {
		t.Errorf("production over its cap: %d %q", a.status, a.body)
	}
	if p, sb := b.prod.Calls(), b.sandbox.Calls(); p != 5 || sb != 3 {
		t.Errorf("backends saw production %d, sandbox %d; want 5 and 3", p, sb)
	}
}

func TestKeysPickTheEnvironmentAndBadKeysNeverReachSluiceOrTheBackend(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	for _, tc := range []struct{ name, header, value, fault string }{
		{"no key", "", "", `"code":900902`},
		{"unknown bearer", "Authorization", "Bearer nope", `"code":900901`},
		{"unknown apikey", "apikey", "nope", `"code":900901`},
		{"basic auth", "Authorization", "Basic cHJvZC1rZXktMTp4", `"code":900902`},
	} {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/pizzashack/1.0.0/menu", nil)
		if tc.header != "" {
			req.Header.Set(tc.header, tc.value)
		}
		req.Close = true
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !contains(body, tc.fault) || !contains(body, `"fault"`) {
			t.Errorf("%s: %d %s, want 401 with fault %s", tc.name, resp.StatusCode, body, tc.fault)
		}
	}
	if n := b.prod.Calls() + b.sandbox.Calls(); n != 0 {
		t.Errorf("backends saw %d calls without a valid key", n)
	}
	usage, err := s.api(t).GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{
		apiDescriptor("PizzaShackAPI:1.0.0", "production"), apiDescriptor("PizzaShackAPI:1.0.0", "sandbox"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range usage.GetDescriptors() {
		for _, l := range d.GetLimits() {
			if l.GetUsed() != 0 {
				t.Errorf("%v: used %d by calls without a valid key", d.GetEntries(), l.GetUsed())
			}
		}
	}

	// The apikey header works as well as a bearer token, and the key's type
	// picks the backend; the credential does not travel upstream.
	req, _ := http.NewRequest(http.MethodGet, g.url+"/pizzashack/1.0.0/menu", nil)
	req.Header.Set("apikey", "sandbox-key-1")
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !contains(body, `"backend":"sandbox"`) || !contains(body, `"path":"/menu"`) {
		t.Errorf("apikey: %d %s, want 200 from the sandbox backend at /menu", resp.StatusCode, body)
	}
	if a := call(t, g, http.MethodGet, "/nothing/here", "prod-key-1", ""); a.status != http.StatusNotFound {
		t.Errorf("unknown context: %d, want 404", a.status)
	}
}

func apiDescriptor(api, env string) *sluicev1.Descriptor {
	return &sluicev1.Descriptor{Entries: []*sluicev1.Entry{{Key: "api", Value: api}, {Key: "environment", Value: env}}}
}

// TestACallThatNeverFitsSaysRetryingWillNotHelp: a client whose call costs
// more than the whole limit (Hits 10 against the sandbox's 3 per minute) is
// told so, not to retry after 0s.
func TestACallThatNeverFitsSaysRetryingWillNotHelp(t *testing.T) {
	s := startSluice(t)
	c, err := client.New(s.srv.GRPCAddr(), client.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	req := client.Request{Domain: "apim", Descriptors: client.APIDescriptors("PizzaShackAPI", "1.0.0", client.Sandbox), Hits: 10}
	dec, err := c.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Allowed || !dec.NeverFits || dec.RetryAfter != 0 || dec.Headers.Get("Retry-After") != "" {
		t.Fatalf("10 hits against 3 per minute: allowed %v never fits %v retry %v Retry-After %q, want refused, never fits, no retry",
			dec.Allowed, dec.NeverFits, dec.RetryAfter, dec.Headers.Get("Retry-After"))
	}
	if msg := limitMessage(dec); !strings.Contains(msg, "retrying will not help") || strings.Contains(msg, "retry after") {
		t.Errorf("message %q", msg)
	}
	req.Hits = 1
	if dec, err = c.Check(context.Background(), req); err != nil || !dec.Allowed || dec.NeverFits {
		t.Fatalf("1 hit after: %+v %v, want allowed (the refused call charged nothing)", dec, err)
	}
}
