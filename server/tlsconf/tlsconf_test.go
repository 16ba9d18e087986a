package tlsconf

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/testcerts"
)

// serve accepts TLS connections with cfg until the test ends, completing
// each handshake.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	return lis.Addr().String()
}

func dial(addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	return &st, nil
}

func TestReloadsRotatedCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "test ca")
	dir := t.TempDir()
	cert, key := ca.Issue(t, "first")
	testcerts.WriteFiles(t, dir, map[string][]byte{"tls.crt": cert, "tls.key": key})
	r, err := New(Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")})
	if err != nil {
		t.Fatal(err)
	}
	r.checkEvery = 10 * time.Millisecond
	addr := serve(t, r.ServerConfig("h2"))
	client := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", NextProtos: []string{"h2"}}

	st, err := dial(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if cn := st.PeerCertificates[0].Subject.CommonName; cn != "first" || st.NegotiatedProtocol != "h2" {
		t.Fatalf("served %q over %q", cn, st.NegotiatedProtocol)
	}
	cert, key = ca.Issue(t, "second")
	testcerts.WriteFiles(t, dir, map[string][]byte{"tls.crt": cert, "tls.key": key})
	time.Sleep(20 * time.Millisecond)
	if st, err = dial(addr, client); err != nil || st.PeerCertificates[0].Subject.CommonName != "second" {
		t.Fatalf("after rotation: %v %v", st, err)
	}
	// A broken rotation keeps serving the last good certificate.
	testcerts.WriteFiles(t, dir, map[string][]byte{"tls.key": []byte("not a key")})
	time.Sleep(20 * time.Millisecond)
	if st, err = dial(addr, client); err != nil || st.PeerCertificates[0].Subject.CommonName != "second" {
		t.Fatalf("after a broken rotation: %v %v", st, err)
	}
	if r.Err() == nil {
		t.Error("a broken key file is not reported")
	}
}

func TestMutualTLSRequiresAClientCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "test ca")
	other := testcerts.NewCA(t, "other ca")
	certs := ca.WriteDir(t, "server")
	r, err := New(Files{Cert: certs.Cert("server"), Key: certs.Key("server"), ClientCA: certs.CA()})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r.ServerConfig())
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"no client certificate", nil, false},
		{"certificate of another CA", []tls.Certificate{other.ClientCert(t, "stranger")}, false},
		{"certificate of the client CA", []tls.Certificate{ca.ClientCert(t, "gateway")}, true},
	} {
		err := handshake(addr, "127.0.0.1", &tls.Config{RootCAs: ca.Pool(), Certificates: tc.certs})
		if rejected := err != nil; rejected == tc.ok {
			t.Errorf("%s: err %v, want accepted=%v", tc.name, err, tc.ok)
		}
	}
}

func TestNewNamesTheBadFile(t *testing.T) {
	_, err := New(Files{Cert: "/nonexistent/tls.crt", Key: "/nonexistent/tls.key"})
	if err == nil || err.Error()[:15] != "tls certificate" {
		t.Errorf("error %v, want it to name the certificate", err)
	}
}
