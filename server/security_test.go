package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/testcerts"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// TestMutualTLSAndBearerToken serves both ports over mutual TLS with a
// bearer token configured: a client certificate verified by the client CA
// authenticates the caller on its own, on gRPC and HTTP alike.
func TestMutualTLSAndBearerToken(t *testing.T) {
	ca := testcerts.NewCA(t, "sluice test ca")
	certs := ca.WriteDir(t, "sluice")
	rs := redistest.New(t)
	const token = "s3cret-token"
	clientTLS := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{ca.ClientCert(t, "gateway")}}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	t.Cleanup(client.CloseIdleConnections)
	s := startSluiceClient(t, server.Config{
		ConfigPath: writeConfig(t, tokenConfig), RedisURL: rs.URL(), AuthToken: token,
		TLSCertFile: certs.Cert("sluice"), TLSKeyFile: certs.Key("sluice"), TLSClientCAFile: certs.CA(),
		HealthAddr: "127.0.0.1:0",
	}, client, "https")
	ctx := context.Background()

	t.Run("grpc with a client certificate needs no token", func(t *testing.T) {
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := sluicev1.NewRateLimitServiceClient(conn)
		resp, err := c.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{Domain: "ai", Descriptors: aiDescriptors("tls", "production"),
			UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 10}})
		if err != nil || resp.OverallCode != sluicev1.Code_OK {
			t.Fatalf("ShouldRateLimit over mTLS: %v %v", resp, err)
		}
		// A verified client certificate authenticates the caller: no token needed.
		report := &sluicev1.ReportUsageRequest{ReservationId: resp.ReservationId, Usage: &sluicev1.Usage{PromptTokens: 5}}
		if _, err := c.ReportUsage(ctx, report); err != nil {
			t.Errorf("ReportUsage with a client certificate and no token: %v", err)
		}
		bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
		if _, err := c.GetUsage(bad, &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: aiDescriptors("tls", "production")}); err != nil {
			t.Errorf("GetUsage with a client certificate and a wrong token: %v", err)
		}
	})

	t.Run("grpc without a client certificate is refused", func(t *testing.T) {
		noCert := clientTLS.Clone()
		noCert.Certificates = nil
		conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(noCert)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = sluicev1.NewRateLimitServiceClient(conn).ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{Domain: "ai", Descriptors: aiDescriptors("tls", "production")})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("without a client certificate: %v, want the handshake to fail", err)
		}
	})

	t.Run("http json: the certificate is enough, health needs nothing", func(t *testing.T) {
		body := `{"domain":"ai","descriptors":[{"entries":[{"key":"plain","value":"x"}]}]}`
		post := func(auth string) int {
			req, _ := http.NewRequest(http.MethodPost, "https://"+s.HTTPAddr()+"/v1/ratelimit:check", strings.NewReader(body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(""); code != http.StatusOK {
			t.Errorf("with a client certificate and no token: %d, want 200", code)
		}
		if code := post("Bearer " + token); code != http.StatusOK {
			t.Errorf("with the token: %d, want 200", code)
		}
		resp, err := client.Post("https://"+s.HTTPAddr()+"/json", "application/json",
			strings.NewReader(`{"domain":"ai","descriptors":[{"entries":[{"key":"plain","value":"x"}],"is_negative_hits":true}]}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/json refund with a client certificate and no token: %d, want 200 (a certificate has full access)", resp.StatusCode)
		}
		resp, err = client.Get("https://" + s.HTTPAddr() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("healthz: %d", resp.StatusCode)
		}
	})

	t.Run("health port: plain HTTP, probes and metrics only", func(t *testing.T) {
		plain := &http.Client{}
		defer plain.CloseIdleConnections()
		get := func(path string) (int, string) {
			resp, err := plain.Get("http://" + s.HealthAddr() + path)
			if err != nil {
				t.Fatalf("GET %s on the health port: %v", path, err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, body := get(path); code != http.StatusOK || body != "ok\n" {
				t.Errorf("GET %s: %d %q, want 200 ok", path, code, body)
			}
		}
		if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "sluice_") {
			t.Errorf("GET /metrics: %d, sluice metrics there: %v", code, strings.Contains(body, "sluice_"))
		}
		resp, err := plain.Post("http://"+s.HealthAddr()+"/v1/ratelimit:check", "application/json",
			strings.NewReader(`{"domain":"ai","descriptors":[{"entries":[{"key":"plain","value":"x"}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("JSON API on the health port: %d, want 404 (not served there)", resp.StatusCode)
		}
		// The service port itself still wants TLS.
		if resp, err := plain.Get("http://" + s.HTTPAddr() + "/healthz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Errorf("the service HTTP port answered plain HTTP")
			}
		}
	})
}
