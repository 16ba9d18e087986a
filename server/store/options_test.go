package store

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestConfigTLSAndPoolSizeReachEveryTopology opens each TLS URL form with a
// client TLS config and a pool size (Open does not dial) and checks the
// go-redis options got them, with each node checking the host it dials.
func TestConfigTLSAndPoolSizeReachEveryTopology(t *testing.T) {
	client := &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }}
	cfg := Config{TLS: client, PoolSize: 7}
	for _, tc := range []struct{ url, serverName string }{
		{"rediss://redis.example:6380", "redis.example"},
		{"rediss+sentinel://h1:26379,h2:26379/mymaster", ""},
		{"rediss+cluster://n1:7000,n2:7001", ""},
	} {
		s, err := OpenConfig(tc.url, cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		var got *tls.Config
		var pool int
		switch c := s.Client.(type) {
		case *redis.ClusterClient:
			got, pool = c.Options().TLSConfig, c.Options().PoolSize
		case *redis.Client:
			got, pool = c.Options().TLSConfig, c.Options().PoolSize
		}
		if got == nil || got.GetClientCertificate == nil || got.ServerName != tc.serverName || got.MinVersion != tls.VersionTLS12 {
			t.Errorf("%s: TLS config %+v, want the client certificate, ServerName %q, TLS 1.2+", tc.url, got, tc.serverName)
		}
		if pool != 7 {
			t.Errorf("%s: pool size %d, want 7", tc.url, pool)
		}
		if !s.Info().ClientCert {
			t.Errorf("%s: Info %v does not say a client certificate is used", tc.url, s.Info())
		}
		_ = s.Close()
	}
}

func TestConfigTLSNeedsATLSURL(t *testing.T) {
	for _, url := range []string{"", "redis://127.0.0.1:6379", "redis+sentinel://h:26379/m", "redis+cluster://h:7000"} {
		s, err := OpenConfig(url, Config{TLS: &tls.Config{}})
		if err == nil {
			_ = s.Close()
			t.Errorf("%q with TLS settings: opened, want an error", url)
		} else if !strings.Contains(err.Error(), "rediss://") {
			t.Errorf("%q with TLS settings: %v, want an error naming rediss://", url, err)
		}
	}
}

func TestUnixSocketURL(t *testing.T) {
	s, err := Open("unix://:pw@/var/run/redis/redis.sock?db=3")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := s.Client.(*redis.Client).Options()
	if o.Network != "unix" || o.Addr != "/var/run/redis/redis.sock" || o.DB != 3 || o.Password != "pw" {
		t.Errorf("unix URL options: network %s addr %s db %d", o.Network, o.Addr, o.DB)
	}
	if got := s.Info().String(); got != "single /var/run/redis/redis.sock" {
		t.Errorf("Info %q", got)
	}
}
