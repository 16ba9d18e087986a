package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/server"
)

// TestLimitsCommand drives `sluice limits` against a server's admin port:
// set, get, list, a stale set, a bad set, delete, and a missing token.
func TestLimitsCommand(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("ci:ci-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "mine")
	if err := os.WriteFile(mine, []byte("ci-token-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := sluicetest.Start(t, server.Config{ConfigPath: "../../deploy/examples/sluice.yaml", AdminAddr: "127.0.0.1:0", AdminTokenFile: tokens})
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		all := append([]string{"limits"}, args...)
		all = append(all, "--admin", srv.AdminAddr(), "--domain", "apim")
		err := run(context.Background(), all, func(k string) string {
			if k == "SLUICE_ADMIN_TOKEN_FILE" {
				return mine
			}
			return ""
		}, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	path := []string{"api=PizzaShackAPI:1.0.0", "environment=sandbox"}

	out, err := cli(append([]string{"set", "--limits", "rate_limit: {window: 1s, requests: 3}", "--version", "0"}, path...)...)
	var set struct {
		Version   string `json:"version"`
		UpdatedBy string `json:"updated_by"`
	}
	if err != nil || json.Unmarshal([]byte(out), &set) != nil || set.Version == "" || set.UpdatedBy != "ci" {
		t.Fatalf("set: %v\n%s", err, out)
	}
	if out, err := cli(append([]string{"get"}, path...)...); err != nil || !strings.Contains(out, `"requests": "3"`) {
		t.Errorf("get: %v\n%s", err, out)
	}
	if out, err := cli("list"); err != nil || strings.Count(out, `"version"`) != 1 {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, err := cli(append([]string{"set", "--limits", "rate_limit: {window: 1s, requests: 4}", "--version", "0"}, path...)...); err == nil || !strings.Contains(err.Error(), "412") {
		t.Errorf("stale set: %v\n%s", err, out)
	}
	if _, err := cli(append([]string{"set", "--limits", "rate_limit: {window: 1s, requests: -4}"}, path...)...); err == nil ||
		!strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "rate_limit.requests: must not be negative") {
		t.Errorf("bad set: %v", err)
	}
	if out, err := cli(append([]string{"delete", "--version", set.Version}, path...)...); err != nil {
		t.Errorf("delete: %v\n%s", err, out)
	}
	if _, err := cli(append([]string{"get"}, path...)...); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("get after delete: %v", err)
	}
	var out2, errOut bytes.Buffer
	err = run(context.Background(), []string{"limits", "list", "--admin", srv.AdminAddr(), "--domain", "apim"}, noEnv, &out2, &errOut)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without a token: %v", err)
	}
	for _, args := range [][]string{{"limits"}, {"limits", "list"}, {"limits", "get", "--domain", "apim"}, {"limits", "frob", "--domain", "d"}, {"limits", "set", "--domain", "apim", "k=v"}} {
		if err := run(context.Background(), args, noEnv, &out2, &errOut); !errors.Is(err, errUsage) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
