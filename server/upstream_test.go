package server_test

// Our own tests of the cases of envoyproxy/ratelimit's integration tests
// (test/integration/integration_test.go, integration-test/scripts/*.sh) and
// README examples, on upstream's own config files (testdata/envoyproxy-ratelimit,
// copied unchanged), through go-control-plane's client of Envoy's API. Their
// expectations are carried over as facts; where Sluice differs by design (a
// sliding window instead of a fixed one, all-or-nothing charging) the test says
// so and asserts Sluice's answer.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/server"
)

const upstreamData = "testdata/envoyproxy-ratelimit"

const (
	okCode   = rlsv3.RateLimitResponse_OK
	overCode = rlsv3.RateLimitResponse_OVER_LIMIT
)

// envoy is a client of one server's Envoy API.
type envoy struct {
	t      *testing.T
	client rlsv3.RateLimitServiceClient
}

func newEnvoy(t *testing.T, cfg server.Config) *envoy {
	t.Helper()
	if cfg.RedisURL == "" {
		cfg.RedisURL = redistest.New(t).URL()
	}
	return &envoy{t: t, client: rlsv3.NewRateLimitServiceClient(dial(t, startSluiceWith(t, cfg)))}
}

// call asks for domain with hits (0: the default of 1) and descriptors.
func (e *envoy) call(domain string, hits uint32, ds ...*ratelimitv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
	e.t.Helper()
	resp, err := e.client.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: domain, HitsAddend: hits, Descriptors: ds})
	if err != nil {
		e.t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp
}

// expectStatus checks one status as upstream's integration test does:
// code, limit (requests per unit), remaining; and that the reset is within
// the window plus one bucket (Sluice's sliding window) when a limit applies.
func expectStatus(t *testing.T, what string, st *rlsv3.RateLimitResponse_DescriptorStatus, code rlsv3.RateLimitResponse_Code,
	requests uint32, unit rlsv3.RateLimitResponse_RateLimit_Unit, remaining uint32) {
	t.Helper()
	if st.GetCode() != code || st.GetLimitRemaining() != remaining ||
		st.GetCurrentLimit().GetRequestsPerUnit() != requests || st.GetCurrentLimit().GetUnit() != unit {
		t.Fatalf("%s: %v, want %v %d per %v, %d remaining", what, st, code, requests, unit, remaining)
	}
	if requests == 0 {
		return
	}
	window := map[rlsv3.RateLimitResponse_RateLimit_Unit]time.Duration{
		rlsv3.RateLimitResponse_RateLimit_SECOND: time.Second, rlsv3.RateLimitResponse_RateLimit_MINUTE: time.Minute,
		rlsv3.RateLimitResponse_RateLimit_HOUR: time.Hour, rlsv3.RateLimitResponse_RateLimit_DAY: 24 * time.Hour,
	}[unit]
	if d := st.GetDurationUntilReset().AsDuration(); d <= 0 || d > window+window/10 {
		t.Fatalf("%s: duration_until_reset %v, want within %v plus one bucket", what, d, window)
	}
}

// TestUpstreamIntegrationBasicConfig is upstream's testBasicBaseConfig on its
// integration configs: an unknown domain, a 50/s limit, going over a 20/min
// limit, two limits in one call, and the reset ticking down.
func TestUpstreamIntegrationBasicConfig(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "integration")})
	const (
		second = rlsv3.RateLimitResponse_RateLimit_SECOND
		minute = rlsv3.RateLimitResponse_RateLimit_MINUTE
		hour   = rlsv3.RateLimitResponse_RateLimit_HOUR
	)

	r := e.call("foo", 1, envoyDesc("hello", "world"))
	if r.OverallCode != okCode || len(r.Statuses) != 1 || r.Statuses[0].CurrentLimit != nil || r.Statuses[0].LimitRemaining != 0 {
		t.Fatalf("unknown domain: %v, want OK with no limit", r)
	}

	r = e.call("basic", 1, envoyDesc("key1", "foo"))
	expectStatus(t, "basic key1", r.Statuses[0], okCode, 50, second, 49)

	value := fmt.Sprint(time.Now().UnixNano())
	for i := range 25 {
		r = e.call("another", 1, envoyDesc("key2", value))
		code, remaining := okCode, uint32(20-(i+1))
		if i >= 20 {
			code, remaining = overCode, 0
		}
		if r.OverallCode != code {
			t.Fatalf("key2 call %d: %v", i+1, r.OverallCode)
		}
		expectStatus(t, fmt.Sprintf("key2 call %d", i+1), r.Statuses[0], code, 20, minute, remaining)
	}

	// Two limits in one call: key3 (10/h) goes over first. Upstream charges
	// key2 anyway unless STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT is set; Sluice
	// charges nothing of a refused call, which is that setting's answer: key2
	// stays at 10 remaining. From the second refusal on the over-limit cache
	// answers, with every status complete.
	value = fmt.Sprint(time.Now().UnixNano())
	for i := range 15 {
		r = e.call("another", 1, envoyDesc("key2", value), envoyDesc("key3", value))
		code, remaining1, remaining2 := okCode, uint32(20-(i+1)), uint32(10-(i+1))
		if i >= 10 {
			code, remaining1, remaining2 = overCode, 10, 0
		}
		if r.OverallCode != code {
			t.Fatalf("key2+key3 call %d: %v", i+1, r.OverallCode)
		}
		expectStatus(t, fmt.Sprintf("key2 in call %d", i+1), r.Statuses[0], okCode, 20, minute, remaining1)
		expectStatus(t, fmt.Sprintf("key3 in call %d", i+1), r.Statuses[1], code, 10, hour, remaining2)
	}

	first := e.call("another", 1, envoyDesc("key4", "durTest")).Statuses[0].DurationUntilReset.AsDuration()
	second2 := e.call("another", 1, envoyDesc("key4", "durTest")).Statuses[0].DurationUntilReset.AsDuration()
	if second2 >= first {
		t.Errorf("duration_until_reset %v then %v: it must tick down", first, second2)
	}
}

// TestUpstreamIntegrationShareThreshold is upstream's testShareThreshold.
func TestUpstreamIntegrationShareThreshold(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "integration")})
	const hour = rlsv3.RateLimitResponse_RateLimit_HOUR
	for range 10 {
		e.call("share-threshold-test", 1, envoyDesc("files", "files/a.pdf"))
	}
	r := e.call("share-threshold-test", 1, envoyDesc("files", "files/b.csv"))
	if r.OverallCode != overCode {
		t.Fatalf("files/b.csv after 10 of files/*: %v", r.OverallCode)
	}
	expectStatus(t, "files/b.csv", r.Statuses[0], overCode, 10, hour, 0)
	for i := range 10 {
		r := e.call("share-threshold-test", 1, envoyDesc("files_no_share", fmt.Sprintf("files_no_share/%d-%d", time.Now().UnixNano(), i)))
		expectStatus(t, "files_no_share", r.Statuses[0], okCode, 10, hour, 9)
	}
}

// TestUpstreamIntegrationConfigReload is upstream's testConfigReload: a file
// added to the config directory is loaded, its removal too.
func TestUpstreamIntegrationConfigReload(t *testing.T) {
	dir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(upstreamData, "integration", "*.yaml"))
	for _, f := range files {
		copyTo(t, f, filepath.Join(dir, filepath.Base(f)))
	}
	e := newEnvoy(t, server.Config{ConfigPath: dir})
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("never %s", what)
			}
		}
	}
	r := e.call("reload", 1, envoyDesc("block", "foo"))
	if r.OverallCode != okCode || r.Statuses[0].CurrentLimit != nil {
		t.Fatalf("before the reload: %v", r)
	}
	copyTo(t, filepath.Join(upstreamData, "reload.yaml"), filepath.Join(dir, "reload.yaml"))
	waitFor("loaded reload.yaml", func() bool { return e.call("reload", 1, envoyDesc("block", "foo")).OverallCode == overCode })
	r = e.call("reload", 1, envoyDesc("key1", "foo"))
	expectStatus(t, "reload key1", r.Statuses[0], okCode, 50, rlsv3.RateLimitResponse_RateLimit_SECOND, 49)
	if err := os.Remove(filepath.Join(dir, "reload.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor("dropped reload.yaml", func() bool { return e.call("reload", 1, envoyDesc("block", "foo")).OverallCode == okCode })
}

// headers are the request headers of one call through upstream's
// examples/envoy/proxy.yaml; route turns them into the descriptors that
// proxy.yaml's rate_limits actions make (an action whose header is missing
// makes no descriptor).
type headers map[string]string

func route(path string, h headers) []*ratelimitv3.RateLimitDescriptor {
	actions := map[string][][]string{
		"/twoheader":  {{"foo", "bar"}, {"foo", "baz"}},
		"/fourheader": {{"foo", "bar"}, {"source_cluster", "destination_cluster"}},
		"/fiveheader": {{"foo", "bar"}, {"source_cluster", "destination_cluster"}, {"category"}},
		"/unspec":     {{"unspec"}},
	}[path]
	var ds []*ratelimitv3.RateLimitDescriptor
next:
	for _, keys := range actions {
		var kv []string
		for _, k := range keys {
			v, ok := h[k]
			if !ok {
				continue next
			}
			kv = append(kv, k, v)
		}
		ds = append(ds, envoyDesc(kv...))
	}
	return ds
}

// TestUpstreamIntegrationScripts runs upstream's integration-test/scripts on
// its examples/ratelimit/config, with the descriptors its Envoy config sends.
// The answers are upstream's; where the counts differ (Sluice does not count
// refused calls) the answers still match.
func TestUpstreamIntegrationScripts(t *testing.T) {
	e := newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "examples")})
	get := func(path string, h headers) bool {
		t.Helper()
		return e.call("rl", 0, route(path, h)...).OverallCode == okCode
	}
	type step struct {
		path string
		h    headers
		ok   bool
	}
	run := func(name string, steps []step) {
		t.Run(name, func(t *testing.T) {
			for i, s := range steps {
				if got := get(s.path, s.h); got != s.ok {
					t.Fatalf("step %d (%s %v): ok=%v, want %v", i+1, s.path, s.h, got, s.ok)
				}
			}
		})
	}
	run("simple-get", []step{{"/twoheader", headers{"foo": "test", "baz": "shady"}, true}})
	notSoShady := headers{"foo": "pelle", "baz": "not-so-shady"}
	run("trigger-ratelimit", []step{
		{"/twoheader", notSoShady, true}, {"/twoheader", notSoShady, true}, {"/twoheader", notSoShady, true},
		{"/twoheader", notSoShady, false}, {"/twoheader", notSoShady, false},
	})
	shady := headers{"foo": "pelle", "baz": "shady"}
	run("trigger-shadow-mode-key", []step{
		{"/twoheader", shady, true}, {"/twoheader", shady, true}, {"/twoheader", shady, true},
		{"/twoheader", shady, true}, {"/twoheader", shady, true}, {"/twoheader", shady, true},
	})
	unspec := headers{"unspec": "unspecified_value"}
	run("value-included-in-stats-key-when-unspecified", []step{{"/unspec", unspec, true}, {"/unspec", unspec, true}, {"/unspec", unspec, false}})

	banned := headers{"foo": "bkthomps", "bar": "banned"}
	with := func(h headers, kv ...string) headers {
		out := headers{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	override := with(banned, "source_cluster", "proxy", "destination_cluster", "override")
	bk := headers{"foo": "my_foo", "bar": "bkthomps", "source_cluster": "proxy", "destination_cluster": "bkthomps"}
	notBK := with(bk, "destination_cluster", "not_bkthomps")
	account := with(bk, "destination_cluster", "fake", "category", "account")
	fake3 := headers{"foo": "foo_3", "bar": "bar_3", "source_cluster": "proxy", "destination_cluster": "fake"}
	run("replaces", []step{
		{"/twoheader", banned, false},
		{"/fourheader", with(banned, "source_cluster", "proxy", "destination_cluster", "mock"), false},
		{"/fourheader", override, true}, {"/fourheader", override, true}, {"/fourheader", override, false},
		{"/fourheader", bk, true}, {"/fourheader", bk, true}, {"/fourheader", bk, false},
		{"/fourheader", notBK, true}, {"/fourheader", notBK, false},
		{"/fourheader", bk, false},
		{"/fiveheader", account, true}, {"/fiveheader", account, true}, {"/fiveheader", account, true}, {"/fiveheader", account, true},
		{"/fiveheader", account, false},
		{"/twoheader", headers{"foo": "foo_2", "bar": "bkthomps"}, true}, {"/twoheader", headers{"foo": "foo_2", "bar": "bkthomps"}, false},
		{"/fourheader", fake3, true}, {"/fourheader", fake3, true}, {"/fourheader", fake3, false},
		{"/fiveheader", account, false},
	})
}

// TestUpstreamQuotaScripts runs upstream's quota.sh, token-quota.sh and
// multiservice-tokenquota.sh on its example config with
// RESPONSE_DYNAMIC_METADATA=true, as its docker-compose runs them: Envoy picks
// the backend from the dynamic metadata of the descriptors that passed.
func TestUpstreamQuotaScripts(t *testing.T) {
	quota := func(hits uint64, services ...string) []*ratelimitv3.RateLimitDescriptor {
		var ds []*ratelimitv3.RateLimitDescriptor
		for _, s := range services {
			d := envoyDesc("service", s)
			if hits != 1 {
				d.HitsAddend = wrapperspb.UInt64(hits)
			}
			ds = append(ds, d)
		}
		return ds
	}
	start := func(t *testing.T) *envoy {
		return newEnvoy(t, server.Config{ConfigPath: filepath.Join(upstreamData, "examples"), EnvoyDynamicMetadata: true})
	}
	t.Run("quota", func(t *testing.T) {
		e := start(t)
		for i, want := range []rlsv3.RateLimitResponse_Code{okCode, okCode, overCode} {
			if r := e.call("rl", 0, quota(1, "service_1", "service_2")...); r.OverallCode != want {
				t.Fatalf("request %d: %v, want %v", i+1, r, want)
			}
		}
	})
	t.Run("token-quota", func(t *testing.T) {
		e := start(t)
		for i := range 4 {
			r := e.call("rl", 0, quota(0, "service_2")...)
			if (r.OverallCode == okCode) != (i < 3) {
				t.Fatalf("request %d: %v (3 pass on 2/min, as upstream)", i+1, r.OverallCode)
			}
			if r.OverallCode == okCode {
				e.call("rl", 0, quota(1, "service_2")...) // the response path
			}
		}
	})
	t.Run("multiservice-tokenquota", func(t *testing.T) {
		e := start(t)
		var served []string
		for range 6 {
			r := e.call("rl", 0, quota(0, "service_1", "service_2")...)
			if r.OverallCode != okCode {
				served = append(served, "429")
				break
			}
			// %DYNAMIC_METADATA(envoy.filters.http.ratelimit:metadata:service_with_quota:name)%
			name := r.GetDynamicMetadata().GetFields()["metadata"].GetStructValue().GetFields()["service_with_quota"].
				GetStructValue().GetFields()["name"].GetStringValue()
			served = append(served, name)
			e.call("rl", 0, quota(1, name)...)
		}
		if got, want := strings.Join(served, " "), "service_1 service_1 service_2 service_2 service_2 429"; got != want {
			t.Errorf("served %s, want %s", got, want)
		}
	})
}

// TestUpstreamReadmeExamples checks the behaviour upstream's README describes
// for its examples 1-11, on those very configs (example4b, the matching
// version of example 4; example 9's three configs merged into one domain).
func TestUpstreamReadmeExamples(t *testing.T) {
	dir := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(upstreamData, "readme", "*.yaml"))
	for _, f := range files {
		if filepath.Base(f) != "example4a.yaml" {
			copyTo(t, f, filepath.Join(dir, filepath.Base(f)))
		}
	}
	e := newEnvoy(t, server.Config{ConfigPath: dir, MergeDomainConfig: true})
	admits := func(n int, domain string, ds ...*ratelimitv3.RateLimitDescriptor) string {
		t.Helper()
		ok := 0
		for range n {
			if e.call(domain, 0, ds...).OverallCode == okCode {
				ok++
			}
		}
		return fmt.Sprint(ok)
	}
	// fits reports whether hits fit at once: for per-second limits, a count
	// made in two calls rather than in a loop the window could slide under.
	fits := func(hits uint32, domain string, ds ...*ratelimitv3.RateLimitDescriptor) string {
		t.Helper()
		return fmt.Sprint(e.call(domain, hits, ds...).OverallCode == okCode)
	}
	both := []*ratelimitv3.RateLimitDescriptor{envoyDesc("key_1", "value_1", "user", "bkthomps"), envoyDesc("key_2", "value_2", "user", "bkthomps")}
	for _, c := range []struct {
		name, got, want string
	}{
		{"1: database users", admits(3, "mongo_cps", envoyDesc("database", "users")), "3"},
		{"2: marketing, 5 a day per number", admits(7, "messaging", envoyDesc("message_type", "marketing", "to_number", "2061111111"), envoyDesc("to_number", "2061111111")), "5"},
		{"2: another number has its own", admits(1, "messaging", envoyDesc("message_type", "marketing", "to_number", "2062222222")), "1"},
		{"3: a black-listed address", admits(1, "edge_proxy_per_ip", envoyDesc("remote_address", "50.0.0.5")), "0"},
		{"3: any other address, 10 a second", admits(1, "edge_proxy_per_ip", envoyDesc("remote_address", "50.0.0.1")), "1"},
		{"4: the nested descriptor matches", fmt.Sprint(e.call("example4", 0, envoyDesc("key", "value", "subkey", "subvalue")).Statuses[0].GetCurrentLimit().GetRequestsPerUnit()), "300"},
		{"5: unlimited", fmt.Sprint(e.call("internal", 0, envoyDesc("ldap", "x")).Statuses[0].GetLimitRemaining()), "4294967295"},
		{"6: user-a in shadow mode", admits(15, "example6", envoyDesc("service", "auth-service", "user", "user-a")), "15"},
		{"7: both descriptors: only the replacing 10/s applies", fits(10, "example7", both...) + fits(1, "example7", both...), "truefalse"},
		{"7: the replaced 5/s is untouched", fits(5, "example7", both[0]) + fits(1, "example7", both[0]), "truefalse"},
		{"8: unspecified values, 10 a minute each", admits(11, "example8", envoyDesc("key1", "unspecified_value")), "10"},
		{"8: a listed value, 20 a minute", admits(1, "example8", envoyDesc("key1", "value1")), "1"},
		{"9: trailing wildcard", fmt.Sprint(e.call("example9", 0, envoyDesc("key1", "valueXYZ")).Statuses[0].GetCurrentLimit().GetRequestsPerUnit()), "20"},
		{"9: middle wildcard", fmt.Sprint(e.call("example9", 0, envoyDesc("path", "/api/123/action")).Statuses[0].GetCurrentLimit().GetRequestsPerUnit()), "20"},
		{"9: middle wildcard, other suffix", fmt.Sprint(e.call("example9", 0, envoyDesc("path", "/api/123/other")).Statuses[0].GetCurrentLimit()), "<nil>"},
		{"9: two wildcards", fmt.Sprint(e.call("example9", 0, envoyDesc("route", "/api/v1/resource/123/action")).Statuses[0].GetCurrentLimit().GetRequestsPerUnit()), "20"},
		{"10: value_to_metric", fmt.Sprint(e.call("example10", 0, envoyDesc("route", "r", "http_method", "GET", "subject_id", "s")).Statuses[0].GetCurrentLimit().GetRequestsPerUnit()), "60"},
		{"11: files/* shares one threshold", admits(5, "example11", envoyDesc("files", "files/a.pdf")) + admits(5, "example11", envoyDesc("files", "files/b.csv")) +
			admits(1, "example11", envoyDesc("files", "files/c.txt")), "550"},
		{"11: files_no_share/* does not", admits(10, "example11", envoyDesc("files_no_share", "files_no_share/a.pdf")) +
			admits(1, "example11", envoyDesc("files_no_share", "files_no_share/b.csv")), "101"},
	} {
		if c.got != c.want {
			t.Errorf("example %s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

func copyTo(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
