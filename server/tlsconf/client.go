package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientFiles names the PEM files of Sluice's TLS connections to a server
// (Redis, an xDS management server): whom to trust, and the certificate to present when the server
// asks for one (mutual TLS).
type ClientFiles struct {
	// CA, when set, holds the CAs the server's certificate must be signed
	// by. (Optional, default: the system's roots)
	CA string
	// Cert and Key are the client certificate chain and its key, reread when
	// the files change. (Optional; both or neither)
	Cert, Key string
	// SkipHostnameVerification checks the server's certificate chain but not
	// that it names the host dialled, for servers whose certificates name
	// something else (GCP Memorystore, Redis behind an IP). (Optional)
	SkipHostnameVerification bool
}

// IsZero reports whether nothing is set.
func (f ClientFiles) IsZero() bool { return f == ClientFiles{} }

// NewClient builds the client tls.Config of f. ServerName is left empty:
// each connection checks the host it dials, which differs from node to node
// of a cluster. An error names the file that is wrong.
func NewClient(f ClientFiles) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate in it", f.CA)
		}
	}
	switch {
	case f.Cert != "" && f.Key != "":
		r, err := New(Files{Cert: f.Cert, Key: f.Key})
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := r.current()
			return cert, nil
		}
	case f.Cert != "" || f.Key != "":
		return nil, errors.New("tls client certificate: give both the certificate and the key file")
	}
	if f.SkipHostnameVerification {
		roots := c.RootCAs
		c.InsecureSkipVerify = true // the chain is verified below, the host name is not
		c.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(cs, roots) }
	}
	return c, nil
}

// verifyChain checks the peer's chain against roots (nil: the system's),
// without a host name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server presented no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: server certificate: %w", err)
	}
	return nil
}
