package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeWithBothTokens: the full token from SLUICE_AUTH_TOKEN and the
// decide-only token from --decide-token-file reach the server's policy.
func TestServeWithBothTokens(t *testing.T) {
	decideFile := tempFile(t, "decide", "decide-0123\n")
	httpAddr := freeAddr(t)
	env := map[string]string{"SLUICE_AUTH_TOKEN": "full-0123"}
	sluice := serveInProcess(t, []string{"serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", "off",
		"--decide-token-file", decideFile}, envOf(env))
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
				t.Fatalf("POST %s: %v; logs:\n%s", path, err, sluice.logs.String())
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
	if err := sluice.stop(t); err != nil {
		t.Errorf("serve after stop: %v", err)
	}
}

// TestServeDecideTokenNeedsTheFullOne: a decide-only token alone would leave
// nobody able to report usage.
func TestServeDecideTokenNeedsTheFullOne(t *testing.T) {
	var logs bytes.Buffer
	env := map[string]string{"SLUICE_DECIDE_TOKEN": "decide-0123"}
	err := run(context.Background(), []string{"serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", freeAddr(t), "--grpc-addr", freeAddr(t)},
		envOf(env), &logs, &logs)
	if err == nil || !strings.Contains(err.Error(), "decide token") {
		t.Errorf("serve with only a decide token: %v, want an error naming the decide token", err)
	}
}
