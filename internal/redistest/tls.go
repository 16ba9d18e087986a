package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
)

// TLS makes servers TLS-only: each listens on its port with TLS and nothing
// else, requires client certificates signed by CAFile (tls-auth-clients
// yes), and speaks TLS, presenting CertFile, to its master, its replicas, the
// Sentinels and the other cluster nodes. The helpers of this package (PING,
// cluster creation, Client) present CertFile too, which must therefore be
// usable as a client certificate (internal/testcerts' are).
type TLS struct {
	CertFile, KeyFile, CAFile string
}

// WithTLS makes the servers TLS-only with these files (see TLS).
func WithTLS(t TLS) Option { return func(c *config) { c.tls = &t } }

// serverArgs are redis-server's arguments for a TLS-only server on port.
func (t *TLS) serverArgs(port int) []string {
	return []string{
		"--port", "0", "--tls-port", strconv.Itoa(port),
		"--tls-cert-file", t.CertFile, "--tls-key-file", t.KeyFile, "--tls-ca-cert-file", t.CAFile,
		"--tls-auth-clients", "yes", "--tls-replication", "yes", "--tls-cluster", "yes",
	}
}

// sentinelConf is the TLS part of a Sentinel's config file.
func (t *TLS) sentinelConf(port int) string {
	return fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients yes\ntls-replication yes\n",
		port, t.CertFile, t.KeyFile, t.CAFile)
}

// cliArgs are redis-cli's arguments to reach a TLS-only server.
func (t *TLS) cliArgs() []string {
	return []string{"--tls", "--cert", t.CertFile, "--key", t.KeyFile, "--cacert", t.CAFile}
}

// clientConfig is the tls.Config the helpers dial with.
func (t *TLS) clientConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("redistest: tls: %w", err)
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("redistest: tls: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("redistest: tls: no certificate in %s", t.CAFile)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{cert}}, nil
}

// ClientTLS is the tls.Config (with the client certificate) that reaches
// the server, nil when it is not TLS-only.
func (s *Server) ClientTLS() *tls.Config {
	if s.cfg.tlsClient == nil {
		return nil
	}
	return s.cfg.tlsClient.Clone()
}

// scheme is "redis" or, for TLS-only servers, "rediss".
func (c *config) scheme() string {
	if c.tls != nil {
		return "rediss"
	}
	return "redis"
}
