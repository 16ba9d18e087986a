package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTheExampleConfigLoads(t *testing.T) {
	cfg, err := loadConfig("../../deploy/gateway/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9090" || cfg.Domain != "apim" || cfg.FailureMode != "closed" || cfg.Timeout != 50*time.Millisecond ||
		len(cfg.APIs) != 2 || cfg.APIs[0].Type != "ai" || cfg.APIs[0].PerConsumer != "key" || cfg.APIs[0].ErrorFormat != "openai" || len(cfg.Keys) != 3 {
		t.Errorf("%+v", cfg)
	}
}

func TestTheIssuesConfigShapeLoadsWithDefaults(t *testing.T) {
	cfg := load(t, `
listen: 127.0.0.1:9090
sluice: 127.0.0.1:8081
domain: apim
failure_mode: closed          # or open
apis:
  - name: ChatAPI
    version: 1.0.0
    context: /chat/1.0.0
    type: ai
    production: http://127.0.0.1:9101
    sandbox: http://127.0.0.1:9102
keys:
  - {key: prod-key-1, type: production}
  - {key: sandbox-key-1, type: sandbox}
`)
	if cfg.Timeout != 50*time.Millisecond || cfg.DrainTimeout != 10*time.Second || cfg.DefaultMaxTokens != 1024 {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestConfigNamesEveryBadField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	body := `
failure_mode: sometimes
apis:
  - {name: A, version: "1", context: chat, type: grpc, production: "ftp://x", encoding: p50k_base, error_format: json, refusal_status: 200}
  - {name: B, context: /b/}
keys:
  - {key: k, type: staging}
  - {key: k, type: production}
`
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"listen: required", "sluice: required", "domain: required", "failure_mode", "apis[0].context",
		"apis[0].type", "apis[0].production", "apis[0].encoding", "apis[0].error_format", "apis[0].refusal_status", "apis[1]: name and version", "apis[1].context", "apis[1]: production or sandbox",
		"keys[0].type", "keys[1].key: used twice"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	if err := os.WriteFile(path, []byte("listen: x\nlisten_typo: y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "listen_typo") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestRunNeedsAConfig(t *testing.T) {
	var stderr strings.Builder
	if err := run(t.Context(), nil, func(string) string { return "" }, &strings.Builder{}, &stderr); err != errUsage {
		t.Errorf("no config: %v", err)
	}
	if !strings.Contains(stderr.String(), "--config") {
		t.Errorf("stderr %q", stderr.String())
	}
	if err := run(t.Context(), nil, func(k string) string {
		if k == "SLUICE_GATEWAY_CONFIG" {
			return "/nonexistent.yaml"
		}
		return ""
	}, &strings.Builder{}, &stderr); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("config from the environment: %v", err)
	}
}

func load(t *testing.T, body string) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadConfigText loads a config from its text.
func loadConfigText(t *testing.T, body string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadConfig(path)
}
