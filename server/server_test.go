package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-rl/sluice/internal/leakcheck"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/server"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// apimConfig caps the sandbox at 10 per minute, so tests do not race the clock.
const apimConfig = `
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {unit: minute, requests_per_unit: 100}
      - key: environment
        value: sandbox
        rate_limit: {unit: minute, requests_per_unit: 10}
`

// sluice is one running server under test.
type sluice struct {
	*sluicetest.Server
	client *http.Client // for the HTTP port
	scheme string       // of the HTTP port
}

// writeConfig writes a config file into a fresh directory and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startSluice runs a server on loopback ports until the test ends and waits
// until it is ready.
func startSluice(t *testing.T, configPath, redisURL string) *sluice {
	t.Helper()
	return startSluiceWith(t, server.Config{ConfigPath: configPath, RedisURL: redisURL})
}

// startSluiceWith is startSluice with more of the config set by the test.
func startSluiceWith(t *testing.T, cfg server.Config) *sluice {
	t.Helper()
	return startSluiceClient(t, cfg, http.DefaultClient, "http")
}

// startSluiceClient is startSluiceWith for a server whose HTTP port is
// reached with client over scheme (https with TLS).
func startSluiceClient(t *testing.T, cfg server.Config, client *http.Client, scheme string) *sluice {
	t.Helper()
	cfg.ReloadInterval, cfg.ReadinessInterval = 50*time.Millisecond, 50*time.Millisecond
	s := &sluice{Server: sluicetest.Start(t, cfg), client: client, scheme: scheme}
	waitReady(t, s, true)
	return s
}

// waitReady polls /readyz until it answers as wanted.
func waitReady(t *testing.T, s *sluice, want bool) {
	t.Helper()
	sluicetest.WaitReady(t, s.client, s.scheme+"://"+s.HTTPAddr()+"/readyz", want)
}

// dial opens a gRPC connection to the server.
func dial(t *testing.T, s *sluice) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// postJSON posts body to path and decodes the JSON answer.
func postJSON(t *testing.T, s *sluice, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post("http://"+s.HTTPAddr()+path, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d %q is not JSON: %v", path, resp.StatusCode, raw, err)
	}
	return resp.StatusCode, out
}
