package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/leakcheck"
)

// TestMain runs the tests, or, when a test started this binary as a
// separate sluice process (sluiceProcess), runs main itself.
func TestMain(m *testing.M) {
	if os.Getenv(runAsSluice) == "1" {
		main()
		os.Exit(0)
	}
	leakcheck.VerifyTestMain(m)
}

func noEnv(string) string { return "" }

func TestCheckConfigAcceptsTheExamples(t *testing.T) {
	for _, path := range []string{"../../deploy/examples/sluice.yaml", "../../deploy/examples/envoy-ratelimit.yaml", "../../deploy/examples",
		// envoyproxy/ratelimit's own example config (quota_mode, metadata)
		"../../server/testdata/envoyproxy-ratelimit/examples"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"check-config", path}, noEnv, &out, &errOut); err != nil {
			t.Errorf("%s: %v\n%s", path, err, errOut.String())
		}
		if !strings.Contains(out.String(), "ok") {
			t.Errorf("%s: output %q", path, out.String())
		}
	}
}

func TestCheckConfigNamesFileLineAndField(t *testing.T) {
	path := tempFile(t, "bad.yaml", "domain: apim\ndescriptors:\n  - key: api\n    rate_limit:\n      unit: fortnight\n      requests_per_unit: 10\n  - value: x\n")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"check-config", path}, noEnv, &out, &errOut)
	if err == nil {
		t.Fatal("a broken config passed")
	}
	for _, want := range []string{
		path + ":5: descriptors[0].rate_limit.unit:",
		path + ":7: descriptors[1].key:",
	} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, errOut.String())
		}
	}
}

// TestCheckConfigMergeDomains checks a domain split over two files: refused
// by default, accepted with --merge-domain-config or with either variable.
func TestCheckConfigMergeDomains(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"pizza.yaml": "domain: apim\ndescriptors:\n  - {key: api, value: PizzaShackAPI, rate_limit: {unit: second, requests_per_unit: 5}}\n",
		"chat.yaml":  "domain: apim\ndescriptors:\n  - {key: api, value: ChatAPI, rate_limit: {unit: second, requests_per_unit: 7}}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		ok   bool
	}{
		{"default", []string{"check-config", dir}, nil, false},
		{"flag", []string{"check-config", "--merge-domain-config", dir}, nil, true},
		{"sluice variable", []string{"check-config", dir}, map[string]string{"SLUICE_MERGE_DOMAIN_CONFIG": "true"}, true},
		{"envoy's variable", []string{"check-config", dir}, map[string]string{"MERGE_DOMAIN_CONFIG": "true"}, true},
		{"flag off over the variable", []string{"check-config", "--merge-domain-config=false", dir}, map[string]string{"MERGE_DOMAIN_CONFIG": "true"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, envOf(tc.env), &out, &errOut)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v\n%s", err, tc.ok, errOut.String())
			}
			if !tc.ok && !strings.Contains(errOut.String(), `duplicate domain "apim"`) {
				t.Errorf("output lacks the duplicate domain:\n%s", errOut.String())
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"serve"}, {"check-config"}, {"serve", "--no-such-flag"},
		{"serve", "--config", "../../deploy/examples/sluice.yaml", "--leases", "sometimes"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, noEnv, &out, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
		if errOut.Len() == 0 {
			t.Errorf("%v: nothing printed", args)
		}
	}
}

// tempFile writes body into a new temporary directory as name and returns
// its path.
func tempFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeFromEnvironmentThenStop runs `sluice serve` configured only by
// SLUICE_* variables on the embedded store, asks it over HTTP, and stops it
// the way SIGTERM does (the context main derives from the signal).
func TestServeFromEnvironmentThenStop(t *testing.T) {
	httpAddr, grpcAddr, healthAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	env := map[string]string{
		"SLUICE_CONFIG":      "../../deploy/examples/sluice.yaml",
		"SLUICE_HTTP_ADDR":   httpAddr,
		"SLUICE_GRPC_ADDR":   grpcAddr,
		"SLUICE_HEALTH_ADDR": healthAddr,
		"SLUICE_ADMIN_ADDR":  adminAddr,
	}
	sluice := serveInProcess(t, []string{"serve"}, envOf(env))

	body := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`
	var over bool
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; !over && time.Now().Before(deadline); i++ {
		resp, err := http.Post("http://"+httpAddr+"/v1/ratelimit:check", "application/json", strings.NewReader(body))
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		over = strings.Contains(buf.String(), `"OVER_LIMIT"`)
	}
	if !over {
		t.Errorf("never reached the sandbox cap; logs:\n%s", sluice.logs.String())
	}
	if !strings.Contains(sluice.logs.String(), "embedded") {
		t.Errorf("start-up does not say it runs on the embedded store:\n%s", sluice.logs.String())
	}
	if resp, err := http.Get("http://" + healthAddr + "/readyz"); err != nil {
		t.Errorf("SLUICE_HEALTH_ADDR: %v", err)
	} else {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("readyz on SLUICE_HEALTH_ADDR: %d", resp.StatusCode)
		}
	}
	if resp, err := http.Get("http://" + adminAddr + "/v1/domains"); err != nil {
		t.Errorf("SLUICE_ADMIN_ADDR: %v", err)
	} else {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("admin domains on SLUICE_ADMIN_ADDR: %d", resp.StatusCode)
		}
	}
	if err := sluice.stop(t); err != nil {
		t.Errorf("serve after stop: %v", err)
	}
}

func TestServeRejectsABrokenConfig(t *testing.T) {
	path := tempFile(t, "bad.yaml", "domain: ''\n")
	var logs bytes.Buffer
	err := run(context.Background(), []string{"serve", "--config", path, "--http-addr", freeAddr(t), "--grpc-addr", freeAddr(t), "--admin-addr", "off"}, noEnv, &logs, &logs)
	if err == nil || !strings.Contains(fmt.Sprint(err), "domain") {
		t.Errorf("serve with a broken config: %v, want an error naming the field", err)
	}
}

// TestServeReadsUpstreamSettings runs `sluice serve` on envoyproxy/ratelimit's
// own example config with its variables — LIMIT_RESPONSE_HEADERS_ENABLED (and a
// header renamed by LIMIT_REMAINING_HEADER), RESPONSE_DYNAMIC_METADATA,
// QUOTA_MODE — and asks Envoy's /json.
func TestServeReadsUpstreamSettings(t *testing.T) {
	httpAddr := freeAddr(t)
	env := map[string]string{
		"SLUICE_CONFIG":                  "../../server/testdata/envoyproxy-ratelimit/examples",
		"SLUICE_HTTP_ADDR":               httpAddr,
		"SLUICE_GRPC_ADDR":               freeAddr(t),
		"SLUICE_ADMIN_ADDR":              "off", // not the shared default 127.0.0.1:8082
		"LIMIT_RESPONSE_HEADERS_ENABLED": "true",
		"LIMIT_REMAINING_HEADER":         "X-Left",
		"RESPONSE_DYNAMIC_METADATA":      "1",
		"QUOTA_MODE":                     "true",
	}
	sluice := serveInProcess(t, []string{"serve"}, envOf(env))
	post := func(body string) (int, string) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Post("http://"+httpAddr+"/json", "application/json", strings.NewReader(body))
			if err == nil {
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(resp.Body)
				_ = resp.Body.Close()
				return resp.StatusCode, buf.String()
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST /json: %v; logs:\n%s", err, sluice.logs.String())
			}
		}
	}
	// foo=a is over its 2/min, foo=b is not: refused, unless every descriptor
	// is in quota mode.
	for range 2 {
		post(`{"domain":"rl","descriptors":[{"entries":[{"key":"foo","value":"a"}]}]}`)
	}
	code, out := post(`{"domain":"rl","descriptors":[{"entries":[{"key":"foo","value":"a"}]},{"entries":[{"key":"foo","value":"b"}]}]}`)
	if code != http.StatusOK || !strings.Contains(out, `"overallCode":"OK"`) {
		t.Errorf("QUOTA_MODE=true: one of two descriptors over answered %d %s", code, out)
	}
	for _, want := range []string{`"key":"X-Left"`, `"key":"RateLimit-Limit"`, `"dynamicMetadata":{`, `"domain":"rl"`} {
		if !strings.Contains(out, want) {
			t.Errorf("answer lacks %s: %s", want, out)
		}
	}
}

func TestServeRefusesABadBooleanSetting(t *testing.T) {
	var logs bytes.Buffer
	env := map[string]string{"SLUICE_CONFIG": "../../deploy/examples", "QUOTA_MODE": "maybe"}
	err := run(context.Background(), []string{"serve"}, envOf(env), &logs, &logs)
	if !errors.Is(err, errUsage) || !strings.Contains(logs.String(), `QUOTA_MODE="maybe"`) {
		t.Errorf("QUOTA_MODE=maybe: %v\n%s", err, logs.String())
	}
}
