package tlsconf

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/testcerts"
)

// mutualServer serves TLS with a certificate of ca that names 127.0.0.1 and
// localhost, and requires client certificates signed by ca.
func mutualServer(t *testing.T, ca *testcerts.CA) string {
	t.Helper()
	cert, key := ca.Issue(t, "server")
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert})
}

// handshake dials addr as host (the name checked against the certificate)
// and reads, so that a refusal of the client certificate (sent after the
// client's side of a TLS 1.3 handshake) is seen.
func handshake(addr, host string, cfg *tls.Config) error {
	cfg = cfg.Clone()
	cfg.ServerName = host
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	if errors.Is(err, io.EOF) {
		return nil // the server closed after a completed handshake
	}
	return err
}

func TestClientPresentsItsCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "redis ca")
	addr := mutualServer(t, ca)
	certs := ca.WriteDir(t, "sluice")

	with, err := NewClient(ClientFiles{CA: certs.CA(), Cert: certs.Cert("sluice"), Key: certs.Key("sluice")})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, "127.0.0.1", with); err != nil {
		t.Errorf("with the client certificate: %v", err)
	}
	without, err := NewClient(ClientFiles{CA: certs.CA()})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, "127.0.0.1", without); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without a client certificate: %v, want a certificate error", err)
	}
	// The server's certificate does not name redis.internal: refused, unless
	// the host name check is skipped; the chain is still checked.
	if err := handshake(addr, "redis.internal", with); err == nil || !strings.Contains(err.Error(), "redis.internal") {
		t.Errorf("wrong host name: %v, want an error naming it", err)
	}
	skip, err := NewClient(ClientFiles{CA: certs.CA(), Cert: certs.Cert("sluice"), Key: certs.Key("sluice"), SkipHostnameVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, "redis.internal", skip); err != nil {
		t.Errorf("wrong host name, hostname verification skipped: %v", err)
	}
	other := testcerts.NewCA(t, "another ca")
	untrusted, err := NewClient(ClientFiles{CA: other.WriteDir(t).CA(), Cert: certs.Cert("sluice"), Key: certs.Key("sluice"), SkipHostnameVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(addr, "redis.internal", untrusted); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("skipping the host name still checks the chain: %v", err)
	}
}

func TestNewClientErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	testcerts.WriteFiles(t, dir, map[string][]byte{"junk.pem": []byte("not a certificate")})
	for _, tc := range []struct {
		files ClientFiles
		want  string
	}{
		{ClientFiles{CA: filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{ClientFiles{CA: filepath.Join(dir, "junk.pem")}, "junk.pem: no PEM certificate"},
		{ClientFiles{Cert: filepath.Join(dir, "junk.pem")}, "both the certificate and the key"},
		{ClientFiles{Cert: filepath.Join(dir, "junk.pem"), Key: filepath.Join(dir, "junk.pem")}, "junk.pem"},
	} {
		if _, err := NewClient(tc.files); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.files, err, tc.want)
		}
	}
}
