package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/httpapi"
)

// answer is one HTTP answer, read whole.
type answer struct {
	code        int
	body        string
	contentType string
	problem     string // X-Sluice-Error
}

func do(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(raw), resp.Header.Get("Content-Type"), resp.Header.Get(httpapi.ErrorHeader)}
}

// TestUpstreamHealthAndJSONErrors: envoyproxy/ratelimit's /healthcheck (200
// "OK", 500 with no body when unhealthy, any method, on the health port too),
// its gRPC health service name "ratelimit" beside "", and its /json error
// answers (a status line as a plain-text body).
func TestUpstreamHealthAndJSONErrors(t *testing.T) {
	rs := redistest.New(t)
	// Readiness probes Redis every 500ms with a 250ms timeout: a loaded
	// machine does not make it flap while the test looks.
	s := &sluice{Server: sluicetest.Start(t, server.Config{ConfigPath: "testdata/envoy-ratelimit.yaml", RedisURL: rs.URL(),
		HealthAddr: "127.0.0.1:0", ReadinessInterval: 500 * time.Millisecond}), client: http.DefaultClient, scheme: "http"}
	waitReady(t, s, true)
	health := healthpb.NewHealthClient(dial(t, s))
	base, ops := "http://"+s.HTTPAddr(), "http://"+s.HealthAddr()
	// serving waits (up to 10s) until the gRPC health service answers want
	// for name, and reports what it answered last.
	serving := func(name string, want healthpb.HealthCheckResponse_ServingStatus) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			r, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
			if err != nil {
				t.Fatalf("health %q: %v", name, err)
			}
			if r.GetStatus() == want || time.Now().After(deadline) {
				return r.GetStatus()
			}
		}
	}

	for _, url := range []string{base, ops} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodHead} {
			a := do(t, method, url+"/healthcheck", "")
			want := "OK"
			if method == http.MethodHead {
				want = ""
			}
			if a.code != http.StatusOK || a.body != want || a.contentType != "text/plain; charset=utf-8" {
				t.Errorf("%s %s/healthcheck: %+v, want 200 OK", method, url, a)
			}
		}
	}
	for _, name := range []string{"", "ratelimit"} {
		if st := serving(name, healthpb.HealthCheckResponse_SERVING); st != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health %q: %v", name, st)
		}
	}
	if _, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "nothing"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown service name: %v, want NotFound", err)
	}

	ok := `{"domain":"edge_proxy_per_ip","descriptors":[{"entries":[{"key":"remote_address","value":"10.4.0.1"}]}]}`
	if a := do(t, http.MethodGet, base+"/json", ok); a.code != http.StatusOK || !strings.Contains(a.body, `"overallCode":"OK"`) {
		t.Errorf("GET /json (upstream takes any method): %+v", a)
	}
	for _, c := range []struct {
		name, body string
		code       int
		problem    string
	}{
		{"broken JSON", `{"nonsense":`, http.StatusBadRequest, "request body"},
		{"unknown field", `{"domain":"d","nonsense":1}`, http.StatusBadRequest, "request body"},
		{"empty domain", `{"domain":"","descriptors":[{"entries":[{"key":"k","value":"v"}]}]}`, http.StatusBadRequest, "domain: must not be empty"},
		{"no descriptors", `{"domain":"edge_proxy_per_ip"}`, http.StatusBadRequest, "descriptors: must not be empty"},
		{"too big", `{"domain":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge, "reading body"},
	} {
		a := do(t, http.MethodPost, base+"/json", c.body)
		if a.code != c.code || a.body != http.StatusText(c.code)+"\n" || a.contentType != "text/plain; charset=utf-8" || !strings.Contains(a.problem, c.problem) {
			t.Errorf("%s: %+v, want %d %q with %s naming %q", c.name, a, c.code, http.StatusText(c.code), httpapi.ErrorHeader, c.problem)
		}
	}

	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, s, false)
	for _, url := range []string{base, ops} {
		if a := do(t, http.MethodGet, url+"/healthcheck", ""); a.code != http.StatusInternalServerError || a.body != "" {
			t.Errorf("%s/healthcheck with Redis down: %+v, want 500 and no body", url, a)
		}
	}
	for _, name := range []string{"", "ratelimit"} {
		if st := serving(name, healthpb.HealthCheckResponse_NOT_SERVING); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("gRPC health %q with Redis down: %v", name, st)
		}
	}
	if a := do(t, http.MethodPost, base+"/json", ok); a.code != http.StatusServiceUnavailable || a.body != "Service Unavailable\n" || a.problem == "" {
		t.Errorf("/json with Redis down: %+v, want 503 (upstream: 400)", a)
	}
}
