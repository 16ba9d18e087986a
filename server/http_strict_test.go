package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/server/httpapi"
)

// httpAnswer is an HTTP answer as a JSON client sees it.
type httpAnswer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// send makes one HTTP call to the server's HTTP port.
func send(t *testing.T, s *sluice, method, path, body string) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.HTTPAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := httpAnswer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// sandboxUsed is what /v1/usage:query says the sandbox cap has used.
func sandboxUsed(t *testing.T, s *sluice) any {
	t.Helper()
	code, out := postJSON(t, s, "/v1/usage:query", sandboxCheck("apim"))
	if code != http.StatusOK {
		t.Fatalf("usage: %d %v", code, out)
	}
	return out["descriptors"].([]any)[0].(map[string]any)["limits"].([]any)[0].(map[string]any)["used"]
}

func TestJSONTrailingGarbageIs400AndChargesNothing(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for _, trailer := range []string{" this is not json", `{"domain":"apim"}`, "}", " \n ]"} {
		for _, path := range []string{"/v1/ratelimit:check", "/v1/usage:query", "/v1/usage:report"} {
			a := send(t, s, http.MethodPost, path, sandboxCheck("apim")+trailer)
			msg, _ := a.body["message"].(string)
			if a.code != http.StatusBadRequest || !strings.Contains(msg, "after the JSON object") {
				t.Errorf("%s with %q after the object: %d %s, want 400 naming the data after the object", path, trailer, a.code, a.raw)
			}
		}
	}
	if used := sandboxUsed(t, s); used != "0" {
		t.Errorf("calls with trailing garbage charged: used %v, want 0", used)
	}
	// Whitespace after the object is still fine, and so is an empty body
	// (which then names the missing field).
	if a := send(t, s, http.MethodPost, "/v1/ratelimit:check", sandboxCheck("apim")+" \r\n\t"); a.code != http.StatusOK || a.body["overall_code"] != "OK" {
		t.Errorf("trailing whitespace: %d %s, want 200 OK", a.code, a.raw)
	}
	if a := send(t, s, http.MethodPost, "/v1/ratelimit:check", ""); a.code != http.StatusBadRequest || !strings.HasPrefix(a.body["message"].(string), "domain:") {
		t.Errorf("empty body: %d %s, want 400 naming domain", a.code, a.raw)
	}
}

func TestHTTPWrongMethodIs405WithAllow(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, path := range []string{"/v1/ratelimit:check", "/v1/usage:query", "/v1/usage:report"} {
			a := send(t, s, method, path, sandboxCheck("apim"))
			if a.code != http.StatusMethodNotAllowed || a.header.Get("Allow") != http.MethodPost {
				t.Errorf("%s %s: %d Allow=%q %s, want 405 with Allow: POST", method, path, a.code, a.header.Get("Allow"), a.raw)
			}
			if msg, _ := a.body["message"].(string); !strings.Contains(msg, "POST") {
				t.Errorf("%s %s: message %q does not say which method to use", method, path, msg)
			}
		}
	}
	if a := send(t, s, http.MethodPost, "/v1/nothing:here", "{}"); a.code != http.StatusNotFound {
		t.Errorf("unknown path: %d %s, want 404", a.code, a.raw)
	}
	if used := sandboxUsed(t, s); used != "0" {
		t.Errorf("wrong methods charged: used %v, want 0", used)
	}
}

func TestHTTPBodyOverTheLimitIs413(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	big := `{"domain":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`
	for _, path := range []string{"/v1/ratelimit:check", "/v1/usage:query", "/v1/usage:report"} {
		a := send(t, s, http.MethodPost, path, big)
		msg, _ := a.body["message"].(string)
		if a.code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "request body") {
			t.Errorf("%s with %d bytes: %d %.200s, want 413 naming the request body", path, len(big), a.code, a.raw)
		}
	}
	// A body of exactly the limit is read (and then judged on its content).
	exact := `{"domain":"apim","descriptors":[]}`
	exact += strings.Repeat(" ", httpapi.MaxBodyBytes-len(exact))
	if a := send(t, s, http.MethodPost, "/v1/ratelimit:check", exact); a.code != http.StatusBadRequest || !strings.HasPrefix(a.body["message"].(string), "descriptors:") {
		t.Errorf("body of exactly MaxBodyBytes: %d %.200s, want 400 naming descriptors", a.code, a.raw)
	}
}

func TestHTTPAnswersCarryNoGRPCInternals(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	for _, c := range []struct{ path, body string }{
		{"/v1/ratelimit:check", sandboxCheck("apim")},
		{"/v1/usage:query", sandboxCheck("apim")},
		{"/v1/ratelimit:check", `{"domain":""}`},
		{"/v1/usage:report", `{"reservation_id":"00000000000000000000000000000000","usage":{"prompt_tokens":1}}`},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.HTTPAddr()+c.path, bytes.NewBufferString(c.body))
		req.Header.Set("TE", "trailers") // asks grpc-gateway for the trailers too
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		for _, h := range []http.Header{resp.Header, resp.Trailer} {
			for name := range h {
				if strings.HasPrefix(name, "Grpc-") && !strings.HasPrefix(name, "Grpc-Metadata-X-Sluice-") {
					t.Errorf("%s %s: answer has %s: %v", c.path, c.body, name, h[name])
				}
			}
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q, want application/json", c.path, ct)
		}
	}
}
