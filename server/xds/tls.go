package xds

import (
	"crypto/tls"
	"errors"

	"github.com/sluice-rl/sluice/server/tlsconf"
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

// config reads the files into a client TLS config (tlsconf.NewClient) that
// checks the server's certificate for ServerName.
func (t *TLS) config() (*tls.Config, error) {
	cfg, err := tlsconf.NewClient(tlsconf.ClientFiles{CA: t.CAFile, Cert: t.CertFile, Key: t.KeyFile})
	if err != nil {
		return nil, err
	}
	cfg.ServerName = t.ServerName
	return cfg, nil
}
