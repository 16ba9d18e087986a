package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
)

// Admin tokens of the tests: ops may write, viewer only read.
const (
	opsToken    = "ops-secret-1"
	viewerToken = "viewer-secret-1"
)

// adminConfig is a server config with the admin port and both token files.
func adminConfig(t *testing.T, configPath, redisURL string) server.Config {
	t.Helper()
	dir := t.TempDir()
	write := filepath.Join(dir, "admin-tokens")
	read := filepath.Join(dir, "admin-read-tokens")
	for path, body := range map[string]string{write: "# admins\nops:" + opsToken + "\n", read: "viewer:" + viewerToken + "\n"} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return server.Config{ConfigPath: configPath, RedisURL: redisURL, AdminAddr: "127.0.0.1:0", AdminTokenFile: write, AdminReadTokenFile: read}
}

// startAdminSluice starts a server with apimConfig and the admin port of
// adminConfig, on a Redis of its own, and returns a client of that Redis.
func startAdminSluice(t *testing.T) (*sluice, *redis.Client) {
	t.Helper()
	rs := redistest.New(t)
	return startSluiceWith(t, adminConfig(t, writeConfig(t, apimConfig), rs.URL())), redistest.Client(t, rs)
}

// adminAnswer is one admin HTTP answer.
type adminAnswer struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

// admin calls a server's admin port with a token ("" for none).
func admin(t *testing.T, s *sluice, token, method, path, body string, header ...string) adminAnswer {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.AdminAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := adminAnswer{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// get walks a decoded JSON answer: get(v, "production", "source").
func get(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// written is what a refused call must not change: the runtime limits'
// revision and the number of audit entries.
func written(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := context.Background()
	rev, _ := rdb.Get(ctx, "sluice:{runtime}:revision").Result()
	n, _ := rdb.ZCard(ctx, "sluice:{runtime}:audit").Result()
	all, _ := rdb.HGetAll(ctx, "sluice:{runtime}:limits").Result()
	b, _ := json.Marshal(all)
	return fmt.Sprintf("revision %s, %d audit entries, limits %s", rev, n, b)
}

const pizzaThroughput = "/v1/domains/apim/apis/PizzaShackAPI:1.0.0/backend-throughput"

// TestAdminBackendThroughputOnTwoReplicas is the API manager's Specify step
// against two replicas on one Redis: a PUT on one is enforced by the other
// within a second; stale, unauthenticated, read-only and bad writes are
// refused and write nothing; a restarted replica keeps the runtime limits; a
// DELETE falls back to the file.
func TestAdminBackendThroughputOnTwoReplicas(t *testing.T) {
	rs := redistest.New(t)
	rdb := redistest.Client(t, rs)
	path := writeConfig(t, apimConfig) // production 100, sandbox 10 a minute
	a := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	b := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	cb := sluicev1.NewRateLimitServiceClient(dial(t, b))

	list := admin(t, a, viewerToken, "GET", "/v1/domains/apim/apis", "")
	if list.code != 200 || get(list.body, "apis", 0, "name") != "PizzaShackAPI:1.0.0" ||
		get(list.body, "apis", 0, "sandbox", "source") != "file" || get(list.body, "apis", 0, "version") != "0.0" ||
		get(list.body, "apis", 0, "sandbox", "limits", 0, "limit", "requests_per_unit") != "10" {
		t.Fatalf("apis: %d %s", list.code, list.raw)
	}

	put := admin(t, a, opsToken, "PUT", pizzaThroughput,
		`{"production": {"requests": 50, "window": "1m"}, "sandbox": {"requests": 3, "window": "1m"}}`, "If-Match", `"0.0"`)
	if put.code != 200 || get(put.body, "sandbox", "requests") != "3" || get(put.body, "sandbox", "source") != "runtime" ||
		get(put.body, "production", "source") != "runtime" {
		t.Fatalf("put: %d %s", put.code, put.raw)
	}
	version, _ := put.body["version"].(string)
	if version == "0.0" || put.header.Get("ETag") != `"`+version+`"` {
		t.Fatalf("version %q, ETag %q", version, put.header.Get("ETag"))
	}
	took := waitSandboxCap(t, cb, 3, time.Second)
	t.Logf("replica b enforces the PUT on replica a after %v", took)
	for i := range 4 {
		resp, err := cb.ShouldRateLimit(context.Background(), sandboxRequest())
		if want := i < 3; err != nil || (resp.OverallCode == sluicev1.Code_OK) != want {
			t.Fatalf("call %d on b: %v %v, want admitted=%v", i+1, resp, err, want)
		}
	}

	// Refusals write nothing.
	before := written(t, rdb)
	for _, tc := range []struct {
		name, token, method, body, ifMatch string
		code                               int
		field                              string // of a 400
	}{
		{"stale", opsToken, "PUT", `{"sandbox": {"requests": 99, "window": "1m"}}`, `"0.0"`, 412, ""},
		{"stale delete", opsToken, "DELETE", ``, `"0.0"`, 412, ""},
		{"no token", "", "PUT", `{"sandbox": {"requests": 99, "window": "1m"}}`, "", 401, ""},
		{"wrong token", "nope", "PUT", `{"sandbox": {"requests": 99, "window": "1m"}}`, "", 401, ""},
		{"read-only token", viewerToken, "PUT", `{"sandbox": {"requests": 99, "window": "1m"}}`, "", 403, ""},
		{"negative", opsToken, "PUT", `{"production": {"requests": 5, "window": "1m"}, "sandbox": {"requests": -1, "window": "1m"}}`, "", 400, "sandbox.requests"},
		{"bad window", opsToken, "PUT", `{"production_tokens": {"window": "a while", "total_tokens": 5}}`, "", 400, "production_tokens.window"},
		{"no window", opsToken, "PUT", `{"sandbox": {"requests": 4}}`, "", 400, "sandbox.window"},
		{"unlimited and a number", opsToken, "PUT", `{"sandbox": {"unlimited": true, "requests": 4}}`, "", 400, "sandbox.unlimited"},
		{"nothing", opsToken, "PUT", `{}`, "", 400, "backend_throughput"},
		{"bad version", opsToken, "PUT", `{"sandbox": {"unlimited": true}, "version": "latest"}`, "", 400, "version"},
		{"unknown field", opsToken, "PUT", `{"sandbox": {"rps": 4}}`, "", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.ifMatch != "" {
				h = []string{"If-Match", tc.ifMatch}
			}
			got := admin(t, a, tc.token, tc.method, pizzaThroughput, tc.body, h...)
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.raw, tc.code)
			}
			if tc.field != "" {
				if f := get(got.body, "details", 0, "field_violations", 0, "field"); f != tc.field {
					t.Errorf("field %v, want %s: %s", f, tc.field, got.raw)
				}
				if msg, _ := got.body["message"].(string); !strings.HasPrefix(msg, tc.field+": ") {
					t.Errorf("message %q does not start with the field %s", msg, tc.field)
				}
			}
			if after := written(t, rdb); after != before {
				t.Errorf("a refused call wrote: %s, was %s", after, before)
			}
		})
	}
	if got, _ := sandboxCap(t, cb); got != 3 {
		t.Errorf("after the refusals b decides with %d, want 3", got)
	}

	// The audit trail: one entry per environment, newest first, by name.
	audit := admin(t, b, viewerToken, "GET", "/v1/audit", "")
	if audit.code != 200 || get(audit.body, "entries", 0, "who") != "ops" || get(audit.body, "entries", 0, "action") != "put" ||
		get(audit.body, "entries", 1, "revision") != get(audit.body, "entries", 0, "revision") ||
		get(audit.body, "entries", 0, "new_value", "rate_limits", 0, "requests") == nil || get(audit.body, "entries", 2) != nil {
		t.Errorf("audit: %d %s", audit.code, audit.raw)
	}

	// The export is a config file with the runtime limit in it.
	export := admin(t, b, viewerToken, "GET", "/v1/config:export?domain=apim", "")
	if export.code != 200 || !strings.HasPrefix(export.header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("export: %d %s", export.code, export.raw)
	}
	d, err := config.Parse("export.yaml", []byte(export.raw))
	if err != nil {
		t.Fatalf("export does not load: %v\n%s", err, export.raw)
	}
	if r, ok := d.Match(sandboxPath); !ok || r.Limits[0].Requests != 3 || !strings.Contains(export.raw, "# runtime limit: version") {
		t.Errorf("export: %+v\n%s", r, export.raw)
	}

	// A restarted replica keeps the runtime limits.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b2 := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	cb2 := sluicev1.NewRateLimitServiceClient(dial(t, b2))
	if got, _ := sandboxCap(t, cb2); got != 3 {
		t.Errorf("restarted replica decides with %d, want the runtime 3", got)
	}

	// DELETE on the restarted replica: a falls back to the file.
	del := admin(t, b2, opsToken, "DELETE", pizzaThroughput, "", "If-Match", `"`+version+`"`)
	if del.code != 200 || get(del.body, "sandbox", "source") != "file" || get(del.body, "sandbox", "requests") != "10" {
		t.Fatalf("delete: %d %s", del.code, del.raw)
	}
	waitSandboxCap(t, sluicev1.NewRateLimitServiceClient(dial(t, a)), 10, time.Second)
	if again := admin(t, a, opsToken, "DELETE", pizzaThroughput, ""); again.code != 404 {
		t.Errorf("delete of nothing: %d %s", again.code, again.raw)
	}
}

// TestAdminRuntimeLimitResource is the generic resource: put, get, list and
// delete by descriptor path, every field of the file format.
func TestAdminRuntimeLimitResource(t *testing.T) {
	s, rdb := startAdminSluice(t)
	client := sluicev1.NewRateLimitServiceClient(dial(t, s))
	const one = "/v1/domains/apim/runtime-limit"
	const query = "?path=api=PizzaShackAPI:1.0.0&path=environment=sandbox"

	if got := admin(t, s, opsToken, "GET", one+query, ""); got.code != 404 {
		t.Errorf("get before put: %d %s", got.code, got.raw)
	}
	body := `{"path": [{"key": "api", "value": "PizzaShackAPI:1.0.0"}, {"key": "environment", "value": "sandbox"}],
	  "rate_limits": [{"unit": "minute", "requests_per_unit": 4}, {"window": "1h", "requests": 100, "buckets": 60, "name": "hourly"}],
	  "token_limit": {"window": "1m", "total_tokens": 1000, "completion_tokens": 400},
	  "version": "0"}`
	put := admin(t, s, opsToken, "PUT", one, body)
	if put.code != 200 || get(put.body, "version") == "0" || get(put.body, "updated_by") != "ops" || get(put.body, "rate_limits", 1, "buckets") != "60" {
		t.Fatalf("put: %d %s", put.code, put.raw)
	}
	version := put.body["version"].(string)
	waitSandboxCap(t, client, 4, time.Second) // GetUsage's first limit is the minute one
	got := admin(t, s, viewerToken, "GET", one+query, "")
	if got.code != 200 || got.body["version"] != version || got.header.Get("ETag") != `"`+version+`"` || get(got.body, "token_limit", "completion_tokens") != "400" {
		t.Errorf("get: %d %s", got.code, got.raw)
	}
	list := admin(t, s, viewerToken, "GET", "/v1/domains/apim/runtime-limits", "")
	if list.code != 200 || get(list.body, "runtime_limits", 0, "version") != version || get(list.body, "runtime_limits", 1) != nil {
		t.Errorf("list: %d %s", list.code, list.raw)
	}

	before := written(t, rdb)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		field                    string
	}{
		{"create over an existing one", "PUT", one, body, 412, ""},
		{"stale", "PUT", one, strings.Replace(body, `"version": "0"`, `"version": "999"`, 1), 412, ""},
		{"same messages as files", "PUT", one, `{"path": [{"key": "api", "value": "X"}], "rate_limit": {"unit": "fortnight", "requests_per_unit": 1}}`, 400, "rate_limit.unit"},
		{"negative", "PUT", one, `{"path": [{"key": "api", "value": "X"}], "rate_limit": {"unit": "second", "requests_per_unit": -3}}`, 400, "rate_limit.requests_per_unit"},
		{"no limit", "PUT", one, `{"path": [{"key": "api", "value": "X"}], "shadow_mode": true}`, 400, "rate_limit"},
		{"no path", "PUT", one, `{"rate_limit": {"unlimited": true}}`, 400, "path"},
		{"empty key", "PUT", one, `{"path": [{"key": "", "value": "X"}], "rate_limit": {"unlimited": true}}`, 400, "path[0].key"},
		{"stale delete", "DELETE", one + query + "&version=999", "", 412, ""},
		{"bad path", "DELETE", one + "?path=api", "", 400, "path[0]"},
		{"delete of nothing", "DELETE", one + "?path=api=Nope", "", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := admin(t, s, opsToken, tc.method, tc.path, tc.body)
			if got.code != tc.code {
				t.Fatalf("%d %s, want %d", got.code, got.raw, tc.code)
			}
			if f := get(got.body, "details", 0, "field_violations", 0, "field"); tc.field != "" && f != tc.field {
				t.Errorf("field %v, want %s: %s", f, tc.field, got.raw)
			}
			if after := written(t, rdb); after != before {
				t.Errorf("a refused call wrote: %s, was %s", after, before)
			}
		})
	}

	del := admin(t, s, opsToken, "DELETE", one+query, "", "If-Match", `"`+version+`"`)
	if del.code != 200 || get(del.body, "version") != version {
		t.Fatalf("delete: %d %s", del.code, del.raw)
	}
	waitSandboxCap(t, client, 10, time.Second)
	domains := admin(t, s, viewerToken, "GET", "/v1/domains", "")
	if domains.code != 200 || get(domains.body, "domains", 0, "name") != "apim" || get(domains.body, "domains", 0, "runtime_limits") != float64(0) {
		t.Errorf("domains: %d %s", domains.code, domains.raw)
	}
}

// TestFileReloadAndRuntimeChangeAtOnce edits the file and puts a runtime
// limit at the same path at the same moment: the documented winner is the
// runtime limit, at its path, on every replica; the file's new values apply
// everywhere else, and at that path again once the runtime limit is gone.
func TestFileReloadAndRuntimeChangeAtOnce(t *testing.T) {
	rs := redistest.New(t)
	path := writeConfig(t, apimConfig) // production 100, sandbox 10
	a := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	b := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	clients := []sluicev1.RateLimitServiceClient{sluicev1.NewRateLimitServiceClient(dial(t, a)), sluicev1.NewRateLimitServiceClient(dial(t, b))}

	edited := strings.NewReplacer("requests_per_unit: 100}", "requests_per_unit: 200}", "requests_per_unit: 10}", "requests_per_unit: 20}").Replace(apimConfig)
	if edited == apimConfig {
		t.Fatal("the edit changed nothing")
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
			t.Error(err)
		}
	})
	var put adminAnswer
	wg.Go(func() {
		put = admin(t, a, opsToken, "PUT", pizzaThroughput, `{"sandbox": {"requests": 30, "window": "1m"}}`)
	})
	wg.Wait()
	if put.code != 200 {
		t.Fatalf("put: %d %s", put.code, put.raw)
	}
	production := &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "production"}}}}}
	for _, c := range clients {
		waitSandboxCap(t, c, 30, 2*time.Second)
		deadline := time.Now().Add(2 * time.Second)
		for {
			resp, err := c.GetUsage(context.Background(), production)
			if err == nil && resp.Descriptors[0].Limits[0].Limit.RequestsPerUnit == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("production never took the file's 200: %v %v", resp, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Another reload later does not undo the runtime limit.
	if err := os.WriteFile(path, []byte(edited+"\n# touched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // four reload intervals
	for _, c := range clients {
		if got, _ := sandboxCap(t, c); got != 30 {
			t.Errorf("after a second reload the sandbox is %d, want the runtime 30", got)
		}
	}
	if del := admin(t, b, opsToken, "DELETE", pizzaThroughput, ""); del.code != 200 {
		t.Fatalf("delete: %d %s", del.code, del.raw)
	}
	for _, c := range clients {
		waitSandboxCap(t, c, 20, time.Second)
	}
}

func TestAdminPortOffByDefaultAndNeverOnTheDataPorts(t *testing.T) {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, apimConfig), rs.URL())
	if s.AdminAddr() != "" {
		t.Errorf("admin port %q without AdminAddr", s.AdminAddr())
	}
	with := startSluiceWith(t, adminConfig(t, writeConfig(t, apimConfig), rs.URL()))
	resp, err := http.Get("http://" + with.HTTPAddr() + "/v1/domains/apim/apis")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("the data-plane HTTP port answers the admin API")
	}
	put, _ := http.NewRequest("PUT", "http://"+with.HTTPAddr()+pizzaThroughput, bytes.NewBufferString(`{"sandbox":{"unlimited":true}}`))
	put.Header.Set("Authorization", "Bearer "+opsToken)
	if resp, err := http.DefaultClient.Do(put); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("the data-plane HTTP port takes admin writes")
		}
	}
}

// TestAdminListApisShowsEveryReplicasTraffic makes calls on two replicas and
// reads the API list on one: usage (a peek, charging nothing) and the
// per-second admitted and refused counts include the other replica's calls.
func TestAdminListApisShowsEveryReplicasTraffic(t *testing.T) {
	rs := redistest.New(t)
	path := writeConfig(t, apimConfig) // sandbox: 10 a minute
	a := startSluiceWith(t, adminConfig(t, path, rs.URL()))
	b := startSluice(t, path, rs.URL()) // no admin port: it still folds its counts
	ca, cb := sluicev1.NewRateLimitServiceClient(dial(t, a)), sluicev1.NewRateLimitServiceClient(dial(t, b))
	for i := range 12 { // 10 admitted, 2 refused
		c := ca
		if i%2 == 1 {
			c = cb
		}
		if _, err := c.ShouldRateLimit(context.Background(), sandboxRequest()); err != nil {
			t.Fatal(err)
		}
	}
	sum := func(v any) (n float64) {
		l, _ := v.([]any)
		for _, x := range l {
			s, _ := x.(string)
			var f float64
			_, _ = fmt.Sscan(s, &f)
			n += f
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := admin(t, a, viewerToken, "GET", "/v1/domains/apim/apis", "")
		sandbox := get(got.body, "apis", 0, "sandbox")
		if got.code != 200 || get(got.body, "usage_error") != "" {
			t.Fatalf("apis: %d %s", got.code, got.raw)
		}
		if get(sandbox, "limits", 0, "used") != "10" || get(sandbox, "limits", 0, "remaining") != "0" {
			t.Fatalf("sandbox usage: %s", got.raw)
		}
		if n := len(get(sandbox, "admitted").([]any)); n != 60 {
			t.Fatalf("%d seconds of traffic, want 60", n)
		}
		if sum(get(sandbox, "admitted")) == 10 && sum(get(sandbox, "refused")) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("traffic never showed 10 admitted and 2 refused: %s", got.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
