package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// TestServeWithBothTokens: the full token from SLUICE_AUTH_TOKEN and the
// decide-only token from --decide-token-file reach the server's policy.
func TestServeWithBothTokens(t *testing.T) {
	decideFile := filepath.Join(t.TempDir(), "decide")
	if err := os.WriteFile(decideFile, []byte("decide-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	env := map[string]string{"SLUICE_AUTH_TOKEN": "full-0123"}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", "off",
			"--decide-token-file", decideFile}, func(k string) string { return env[k] }, &logs, &logs)
	}()
	post := func(path, token, body string) int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+path, strings.NewReader(body))
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_ = resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %v; logs:\n%s", path, err, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	check := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`
	refund := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}],"is_negative_hits":true}]}`
	for _, c := range []struct {
		path, token, body string
		want              int
	}{
		{"/v1/ratelimit:check", "", check, http.StatusUnauthorized},
		{"/v1/ratelimit:check", "decide-0123", check, http.StatusOK},
		{"/json", "decide-0123", refund, http.StatusForbidden},
		{"/json", "full-0123", refund, http.StatusOK},
	} {
		if got := post(c.path, c.token, c.body); got != c.want {
			t.Errorf("POST %s with %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve after stop: %v", err)
	}
}

// TestServeDecideTokenNeedsTheFullOne: a decide-only token alone would leave
// nobody able to report usage.
func TestServeDecideTokenNeedsTheFullOne(t *testing.T) {
	var logs bytes.Buffer
	env := map[string]string{"SLUICE_DECIDE_TOKEN": "decide-0123"}
	err := run(context.Background(), []string{"serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", freeAddr(t), "--grpc-addr", freeAddr(t)},
		func(k string) string { return env[k] }, &logs, &logs)
	if err == nil || !strings.Contains(err.Error(), "decide token") {
		t.Errorf("serve with only a decide token: %v, want an error naming the decide token", err)
	}
}
