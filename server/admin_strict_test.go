package server_test

import (
	"net/http"
	"strings"
	"testing"

	adminapi "github.com/sluice-rl/sluice/server/admin"
)

// TestAdminJSONIsStrictToo: the admin port's JSON API answers bad bodies and
// methods as the data plane's /v1 does — trailing garbage 400 and nothing
// written, a body over the limit 413, a wrong method 405 with Allow.
func TestAdminJSONIsStrictToo(t *testing.T) {
	s, rdb := startAdminSluice(t)
	const one = "/v1/domains/apim/runtime-limit"
	body := `{"path": [{"key": "api", "value": "PizzaShackAPI:1.0.0"}, {"key": "environment", "value": "sandbox"}],
	  "rate_limit": {"unit": "minute", "requests_per_unit": 4}, "version": "0"}`
	before := written(t, rdb)

	if a := admin(t, s, opsToken, "PUT", one, body+` this is not json`); a.code != http.StatusBadRequest || !strings.Contains(a.raw, "after the JSON object") {
		t.Errorf("PUT with trailing garbage: %d %s, want 400 naming the data after the object", a.code, a.raw)
	}
	big := `{"path":[{"key":"api","value":"` + strings.Repeat("x", adminapi.MaxBodyBytes) + `"}]}`
	if a := admin(t, s, opsToken, "PUT", one, big); a.code != http.StatusRequestEntityTooLarge || !strings.Contains(a.raw, "request body") {
		t.Errorf("PUT of %d bytes: %d %.200s, want 413", len(big), a.code, a.raw)
	}
	if after := written(t, rdb); after != before {
		t.Errorf("refused admin calls wrote to Redis:\nbefore %s\nafter  %s", before, after)
	}
	for _, c := range []struct{ method, path, allow string }{
		{"POST", one, "GET, PUT, DELETE"},
		{"PATCH", "/v1/domains/apim/apis/PizzaShackAPI:1.0.0/backend-throughput", "GET, PUT, DELETE"},
		{"DELETE", "/v1/domains", "GET"},
		{"PUT", "/v1/domains/apim/runtime-limits", "GET"},
		{"POST", "/v1/audit", "GET"},
	} {
		a := admin(t, s, opsToken, c.method, c.path, "{}")
		if a.code != http.StatusMethodNotAllowed || a.header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow=%q %s, want 405 with Allow: %s", c.method, c.path, a.code, a.header.Get("Allow"), a.raw, c.allow)
		}
	}
	if a := admin(t, s, opsToken, "PUT", one, body); a.code != http.StatusOK {
		t.Errorf("the same PUT without the garbage: %d %s", a.code, a.raw)
	}
}
