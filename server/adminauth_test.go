package server_test

import (
	"testing"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// TestAdminEveryCallNeedsTheToken: with admin tokens, every admin route —
// reads as well as writes, the generic resource as well as the API view —
// answers 401 without a valid token and 403 to a write with a read-only
// one, and none of them writes anything; the console's own files, which hold
// nothing secret, need no token.
func TestAdminEveryCallNeedsTheToken(t *testing.T) {
	s, rdb := startAdminSluice(t)
	const one = "/v1/domains/apim/runtime-limit"
	const query = "?path=api=PizzaShackAPI:1.0.0&path=environment=sandbox"
	runtimeBody := `{"path": [{"key": "api", "value": "PizzaShackAPI:1.0.0"}, {"key": "environment", "value": "sandbox"}], "rate_limit": {"unit": "minute", "requests_per_unit": 1}}`
	throughputBody := `{"sandbox": {"requests": 1, "window": "1m"}}`

	// Something to delete, so that a refused delete would have work to do.
	if put := admin(t, s, opsToken, "PUT", one, runtimeBody); put.code != 200 {
		t.Fatalf("put: %d %s", put.code, put.raw)
	}
	before := written(t, rdb)

	reads := [][2]string{
		{"GET", "/v1/domains"},
		{"GET", "/v1/domains/apim/runtime-limits"},
		{"GET", one + query},
		{"GET", "/v1/domains/apim/apis"},
		{"GET", pizzaThroughput},
		{"GET", "/v1/audit"},
		{"GET", "/v1/config:export"},
	}
	writes := []struct{ method, path, body string }{
		{"PUT", one, runtimeBody},
		{"DELETE", one + query, ""},
		{"PUT", pizzaThroughput, throughputBody},
		{"DELETE", pizzaThroughput, ""},
	}
	for _, token := range []string{"", "not-a-token", "Bearer " + opsToken} { // the last: "Bearer Bearer …"
		for _, r := range reads {
			if got := admin(t, s, token, r[0], r[1], ""); got.code != 401 || got.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with token %q: %d %s, want 401 with WWW-Authenticate", r[0], r[1], token, got.code, got.raw)
			}
		}
		for _, w := range writes {
			if got := admin(t, s, token, w.method, w.path, w.body); got.code != 401 {
				t.Errorf("%s %s with token %q: %d %s, want 401", w.method, w.path, token, got.code, got.raw)
			}
		}
	}
	for _, r := range reads {
		if got := admin(t, s, viewerToken, r[0], r[1], ""); got.code != 200 {
			t.Errorf("%s %s with the read-only token: %d %s", r[0], r[1], got.code, got.raw)
		}
	}
	for _, w := range writes {
		if got := admin(t, s, viewerToken, w.method, w.path, w.body); got.code != 403 {
			t.Errorf("%s %s with the read-only token: %d %s, want 403", w.method, w.path, got.code, got.raw)
		}
	}
	if after := written(t, rdb); after != before {
		t.Errorf("refused calls wrote: %s, was %s", after, before)
	}
	if got, _ := sandboxCap(t, sluicev1.NewRateLimitServiceClient(dial(t, s))); got != 1 {
		t.Errorf("after the refusals sandbox decides with %d, want the runtime 1", got)
	}

	for _, path := range []string{"/", "/console.js", "/console.css"} {
		if got := admin(t, s, "", "GET", path, ""); got.code != 200 || got.raw == "" {
			t.Errorf("console %s without a token: %d", path, got.code)
		}
	}
}
