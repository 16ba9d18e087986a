package store

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/testcerts"
	"github.com/sluice-rl/sluice/server/tlsconf"
)

// TestMutualTLSToEveryTopology runs a single node, a cluster and a Sentinel
// set that listen on TLS only and require client certificates
// (tls-auth-clients yes), and opens each as Sluice does: with the client
// certificate every node answers; without it the error says what is
// missing.
func TestMutualTLSToEveryTopology(t *testing.T) {
	certs := testcerts.NewCA(t, "redis ca").WriteDir(t, "redis", "sluice")
	files := redistest.TLS{CertFile: certs.Cert("redis"), KeyFile: certs.Key("redis"), CAFile: certs.CA()}
	withCert, err := tlsconf.NewClient(tlsconf.ClientFiles{CA: certs.CA(), Cert: certs.Cert("sluice"), Key: certs.Key("sluice")})
	if err != nil {
		t.Fatal(err)
	}
	withoutCert, err := tlsconf.NewClient(tlsconf.ClientFiles{CA: files.CAFile})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"single", func(t *testing.T) string { return redistest.New(t, redistest.WithTLS(files)).URL() }},
		{"cluster", func(t *testing.T) string { return redistest.NewCluster(t, 3, redistest.WithTLS(files)).URL() }},
		{"sentinel", func(t *testing.T) string {
			return redistest.NewSentinel(t, "tlsmaster", 1, redistest.WithTLS(files)).URL()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url(t)
			if !strings.HasPrefix(url, "rediss") {
				t.Fatalf("url %s: not TLS", url)
			}
			s := open(t, url, withCert)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("with the client certificate: %v", err)
			}
			if err := s.Client.Set(ctx, "{tls}k", "v", time.Minute).Err(); err != nil {
				t.Fatalf("SET over mutual TLS: %v", err)
			}
			if !s.Info().ClientCert || !s.Info().TLS {
				t.Errorf("Info %v: TLS with a client certificate not said", s.Info())
			}

			bare := open(t, url, withoutCert)
			ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel2()
			err := bare.Ping(ctx2)
			if err == nil {
				t.Fatal("without a client certificate: Ping answered")
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("without a client certificate: %v, want an error about the certificate", err)
			}
			if !strings.Contains(err.Error(), "requires a client certificate it trusts: give --redis-tls-cert and --redis-tls-key") {
				t.Errorf("without a client certificate: %v, want the error to say what to give", err)
			}
			t.Logf("without a client certificate: %v", err)
		})
	}
}

func open(t *testing.T, url string, tc *tls.Config) *Store {
	t.Helper()
	s, err := OpenConfig(url, Config{TLS: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
