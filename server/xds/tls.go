package xds

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is how the client verifies the management server and, for mutual
// TLS, proves itself to it. The files are read at every connection attempt,
// so rotated certificates are picked up at the next reconnect.
type TLS struct {
	// CAFile holds the PEM CAs that sign the server's certificate
	// (CONFIG_GRPC_XDS_SERVER_TLS_CACERT). (Optional, default: the system's)
	CAFile string
	// CertFile and KeyFile are the client certificate for mutual TLS
	// (CONFIG_GRPC_XDS_CLIENT_TLS_CERT, _KEY). (Optional; both or neither)
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry
	// (CONFIG_GRPC_XDS_SERVER_TLS_SAN). (Optional, default: the host of the
	// server address)
	ServerName string
}

// Validate reports settings that cannot work; config reads the files.
func (t *TLS) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("tls: give both a client certificate and a key file, or neither")
	}
	_, err := t.config()
	return err
}

// config reads the files into a client TLS config.
func (t *TLS) config() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate in it", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate %s: %w", t.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
