package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// TestGatewayWithSluiceTokens: against a Sluice that wants a token on every
// call, a gateway with sluice_token_file (the full token) checks, reserves
// and reports as before; one without a token fails closed.
func TestGatewayWithSluiceTokens(t *testing.T) {
	const full, decide = "gateway-full-token", "gateway-decide-token"
	rs := redistest.New(t)
	dir := t.TempDir()
	limitsPath, tokenPath := filepath.Join(dir, "limits.yaml"), filepath.Join(dir, "token")
	if err := os.WriteFile(limitsPath, []byte(limits), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenPath, []byte(full+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := sluicetest.Start(t, server.Config{ConfigPath: limitsPath, RedisURL: rs.URL(), AuthToken: full, DecideToken: decide,
		ReadinessInterval: 50 * time.Millisecond, DrainTimeout: time.Second})
	sluicetest.WaitReady(t, http.DefaultClient, "http://"+srv.HTTPAddr()+"/readyz", true)
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds("Bearer "+full)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	api := sluicev1.NewRateLimitServiceClient(conn)
	b := startBackends(t)

	g := startGateway(t, gatewayConfig(srv.GRPCAddr(), "closed", b)+"sluice_token_file: "+tokenPath+"\n")
	if a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", ""); a.status != http.StatusOK {
		t.Errorf("rest call with the token: %d %s", a.status, a.body)
	}
	body := `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`
	if a := call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "sandbox-key-1", body); a.status != http.StatusOK {
		t.Fatalf("ai call with the token: %d %s", a.status, a.body)
	}
	if got, want := settled(t, api, "sandbox")[sluicev1.LimitKind_TOTAL_TOKENS], b.sandbox.Usage([]byte(body)).TotalTokens; got != want {
		t.Errorf("sluice counts %d tokens after the report, the backend said %d", got, want)
	}

	none := startGateway(t, gatewayConfig(srv.GRPCAddr(), "closed", b))
	if a := call(t, none, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", ""); a.status != http.StatusServiceUnavailable {
		t.Errorf("rest call without a token: %d, want 503 (Sluice refused it; failure mode closed)", a.status)
	}
	if c := b.prod.Calls(); c != 1 {
		t.Errorf("production backend saw %d calls, want 1 (the tokenless call must not reach it)", c)
	}
}

// tokenCreds sends one authorization value with every call.
type tokenCreds string

func (c tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(c)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }
