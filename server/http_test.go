package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/server/limiter"
)

func sandboxCheck(domain string) string {
	return fmt.Sprintf(`{"domain":%q,"descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`, domain)
}

func TestJSONCheckReachesTheSandboxCap(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for i := range 10 {
		code, out := postJSON(t, s, "/v1/ratelimit:check", sandboxCheck("apim"))
		if code != http.StatusOK || out["overall_code"] != "OK" {
			t.Fatalf("call %d: %d %v, want 200 OK", i+1, code, out)
		}
		st := out["statuses"].([]any)[0].(map[string]any)
		if got, want := st["limit_remaining"], fmt.Sprint(9-i); got != want {
			t.Errorf("call %d: limit_remaining %v, want %s (uint64 is a JSON string)", i+1, got, want)
		}
	}
	code, out := postJSON(t, s, "/v1/ratelimit:check", sandboxCheck("apim"))
	if code != http.StatusOK {
		t.Fatalf("over limit answered HTTP %d; over limit is an answer, not an error", code)
	}
	if out["overall_code"] != "OVER_LIMIT" {
		t.Fatalf("11th call on a cap of 10: %v", out)
	}
	if out["raw_body"] != limiter.DefaultOverLimitBody {
		t.Errorf("raw_body %v, want the 900801 fault", out["raw_body"])
	}
	st := out["statuses"].([]any)[0].(map[string]any)
	for _, field := range []string{"code", "current_limit", "limit_remaining", "duration_until_reset", "retry_after"} {
		if _, ok := st[field]; !ok {
			t.Errorf("status lacks %q: %v", field, st)
		}
	}
	if st["current_limit"].(map[string]any)["requests_per_unit"] != "10" {
		t.Errorf("current_limit %v, want the sandbox cap of 10", st["current_limit"])
	}
	headers := map[string]string{}
	for _, h := range out["response_headers_to_add"].([]any) {
		h := h.(map[string]any)
		headers[h["key"].(string)] = h["value"].(string)
	}
	for _, name := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} {
		if headers[name] == "" {
			t.Errorf("header %s missing: %v", name, headers)
		}
	}
	if headers["RateLimit-Limit"] != "10" || headers["RateLimit-Remaining"] != "0" {
		t.Errorf("headers %v, want limit 10 remaining 0", headers)
	}
}

func TestJSONBadInputIs400NamingTheField(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for _, tc := range []struct{ body, field string }{
		{`{"descriptors":[{"entries":[{"key":"api","value":"x"}]}]}`, "domain"},
		{`{"domain":"apim"}`, "descriptors"},
		{`{"domain":"apim","descriptors":[{"entries":[{"key":"","value":"x"}]}]}`, "descriptors[0].entries[0].key"},
		{`{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"x"}]}],"hits_addend":"5000000000"}`, "hits_addend"},
		{`{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"` + strings.Repeat("v", 2000) + `"}]}]}`, "descriptors[0].entries[0].value"},
	} {
		code, out := postJSON(t, s, "/v1/ratelimit:check", tc.body)
		msg, _ := out["message"].(string)
		if code != http.StatusBadRequest || !strings.HasPrefix(msg, tc.field+":") {
			t.Errorf("%s: %d %q, want 400 naming %q", tc.body[:min(len(tc.body), 80)], code, msg, tc.field)
		}
	}
	code, out := postJSON(t, s, "/v1/usage:query", sandboxCheck("apim"))
	if code != http.StatusOK {
		t.Fatalf("usage: %d %v", code, out)
	}
	lim := out["descriptors"].([]any)[0].(map[string]any)["limits"].([]any)[0].(map[string]any)
	if lim["used"] != "0" || lim["remaining"] != "10" {
		t.Errorf("bad input charged something: %v", lim)
	}
}

func TestJSONUsageQueryChargesNothing(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for range 3 {
		postJSON(t, s, "/v1/ratelimit:check", sandboxCheck("apim"))
	}
	for range 2 {
		code, out := postJSON(t, s, "/v1/usage:query", sandboxCheck("apim"))
		if code != http.StatusOK {
			t.Fatalf("usage: %d %v", code, out)
		}
		d := out["descriptors"].([]any)[0].(map[string]any)
		if d["matched"] != true {
			t.Fatalf("usage: descriptor not matched: %v", d)
		}
		lim := d["limits"].([]any)[0].(map[string]any)
		if lim["used"] != "3" || lim["remaining"] != "7" {
			t.Errorf("usage %v, want used 3 remaining 7", lim)
		}
	}
}

func TestHealthEndpoints(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + s.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}

func TestJSONReserveAndReport(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, tokenConfig), rs.URL())
	desc := `"descriptors":[{"entries":[{"key":"api","value":"json"},{"key":"environment","value":"production"}]}]`
	code, out := postJSON(t, s, "/v1/ratelimit:check", `{"domain":"ai",`+desc+`,"usage_estimate":{"prompt_tokens":100,"completion_tokens":50}}`)
	id, _ := out["reservation_id"].(string)
	if code != http.StatusOK || out["overall_code"] != "OK" || len(id) != 32 {
		t.Fatalf("reserve: %d %v", code, out)
	}
	code, out = postJSON(t, s, "/v1/usage:report", `{"reservation_id":"`+id+`","usage":{"prompt_tokens":90,"completion_tokens":30}}`)
	if code != http.StatusOK || len(out["limits"].([]any)) != 3 {
		t.Fatalf("report: %d %v", code, out)
	}
	code, out = postJSON(t, s, "/v1/usage:query", `{"domain":"ai",`+desc+`}`)
	if code != http.StatusOK {
		t.Fatalf("usage: %d %v", code, out)
	}
	for _, l := range out["descriptors"].([]any)[0].(map[string]any)["limits"].([]any) {
		l := l.(map[string]any)
		want := map[string]string{"REQUESTS": "1", "TOTAL_TOKENS": "120", "PROMPT_TOKENS": "90", "COMPLETION_TOKENS": "30"}[l["limit"].(map[string]any)["kind"].(string)]
		if l["used"] != want || l["reserved"] != "0" {
			t.Errorf("%v: want used %s, nothing reserved", l, want)
		}
	}
	code, out = postJSON(t, s, "/v1/usage:report", `{"reservation_id":"`+strings.Repeat("0", 32)+`","usage":{"prompt_tokens":1}}`)
	if code != http.StatusNotFound {
		t.Errorf("unknown reservation: %d %v, want 404", code, out)
	}
}
