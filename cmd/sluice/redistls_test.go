package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/testcerts"
)

// TestServeRedisMutualTLS runs `sluice serve` against a redis-server that
// listens on TLS only and requires client certificates: configured by
// upstream's REDIS_TLS* variables it decides (the counter lands in that
// Redis); with --redis-tls-cert and --redis-tls-key given empty it has no
// certificate, stays unready, and /readyz says what to give.
func TestServeRedisMutualTLS(t *testing.T) {
	certs := testcerts.NewCA(t, "redis ca").WriteDir(t, "redis", "sluice")
	redis := redistest.New(t, redistest.WithTLS(redistest.TLS{CertFile: certs.Cert("redis"), KeyFile: certs.Key("redis"), CAFile: certs.CA()}))

	env := map[string]string{
		"SLUICE_CONFIG": "../../deploy/examples/sluice.yaml", "SLUICE_ADMIN_ADDR": "off",
		"REDIS_SOCKET_TYPE": "tcp", "REDIS_URL": redis.Addr(), "REDIS_TLS": "true",
		"REDIS_TLS_CACERT": certs.CA(), "REDIS_TLS_CLIENT_CERT": certs.Cert("sluice"), "REDIS_TLS_CLIENT_KEY": certs.Key("sluice"),
	}
	for _, tc := range []struct {
		name     string
		extra    []string
		wantCode int
	}{
		{"with the client certificate", nil, http.StatusOK},
		{"without it", []string{"--redis-tls-cert", "", "--redis-tls-key", ""}, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpAddr := freeAddr(t)
			args := append([]string{"serve", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", "off"}, tc.extra...)
			sluice := serveInProcess(t, args, envOf(env))
			var code int
			var body string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				resp, err := http.Get("http://" + httpAddr + "/readyz")
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				code, body = resp.StatusCode, string(b)
				if code == tc.wantCode && (code == http.StatusOK || strings.Contains(body, "certificate")) {
					break
				}
			}
			if code != tc.wantCode {
				t.Fatalf("/readyz %d %q, want %d\n%s", code, body, tc.wantCode, sluice.logs.String())
			}
			if code != http.StatusOK {
				if !strings.Contains(body, "--redis-tls-cert") {
					t.Errorf("/readyz %q does not say to give a client certificate", body)
				}
				return
			}
			check := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`
			resp, err := http.Post("http://"+httpAddr+"/v1/ratelimit:check", "application/json", strings.NewReader(check))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"OK"`) {
				t.Errorf("check over mutual TLS to Redis: %d %s", resp.StatusCode, b)
			}
			if n := len(counterKeys(t, redistest.Client(t, redis))); n == 0 {
				t.Error("no counter in the TLS Redis")
			}
			if !strings.Contains(sluice.logs.String(), "store.client_cert=true") {
				t.Errorf("the start-up line does not say a client certificate is used:\n%s", sluice.logs.String())
			}
		})
	}
}
