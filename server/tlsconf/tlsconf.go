// Package tlsconf builds the TLS configuration of Sluice's ports from files
// on disk, and reloads them when they change — so a certificate rotated by
// cert-manager or a mounted Secret takes effect without a restart.
package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of a port's TLS.
type Files struct {
	// Cert and Key are the server certificate chain and its key. (Required)
	Cert, Key string
	// ClientCA, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs. (Optional)
	ClientCA string
}

// Reloader serves the current certificate and client CAs, rereading the files
// when their contents change (checked at most once per CheckEvery).
type Reloader struct {
	files      Files
	checkEvery time.Duration

	mu        sync.Mutex
	checked   time.Time
	certPEM   []byte
	keyPEM    []byte
	caPEM     []byte
	cert      *tls.Certificate
	clientCAs *x509.CertPool
	lastErr   error
}

// CheckEvery is how often a TLS handshake may look at the files again.
const CheckEvery = time.Second

// New loads the files once; an error names the file that is wrong.
func New(files Files) (*Reloader, error) {
	if files.Cert == "" || files.Key == "" {
		return nil, errors.New("tls: both a certificate and a key file are needed")
	}
	r := &Reloader{files: files, checkEvery: CheckEvery}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// ServerConfig is the tls.Config of a port serving protocols (ALPN), e.g.
// "h2" for gRPC, "h2" and "http/1.1" for HTTP.
func (r *Reloader) ServerConfig(protocols ...string) *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: protocols}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, cas := r.current()
		c := base.Clone()
		c.GetConfigForClient = nil
		c.Certificates = []tls.Certificate{*cert}
		if cas != nil {
			c.ClientCAs = cas
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base
}

// current returns the certificate and CAs, reloading first when the files
// may have changed. A reload that fails keeps the previous ones.
func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	due := time.Since(r.checked) >= r.checkEvery
	r.mu.Unlock()
	if due {
		_ = r.reload() // the error is kept in lastErr; old material stays in use
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, r.clientCAs
}

// Err is the error of the last reload attempt, nil when it succeeded.
func (r *Reloader) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Reloader) reload() error {
	certPEM, err := os.ReadFile(r.files.Cert)
	if err != nil {
		return r.fail(fmt.Errorf("tls certificate: %w", err))
	}
	keyPEM, err := os.ReadFile(r.files.Key)
	if err != nil {
		return r.fail(fmt.Errorf("tls key: %w", err))
	}
	var caPEM []byte
	if r.files.ClientCA != "" {
		if caPEM, err = os.ReadFile(r.files.ClientCA); err != nil {
			return r.fail(fmt.Errorf("tls client ca: %w", err))
		}
	}
	r.mu.Lock()
	same := bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) && bytes.Equal(caPEM, r.caPEM)
	r.mu.Unlock()
	if same {
		r.mark(nil)
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return r.fail(fmt.Errorf("tls %s / %s: %w", r.files.Cert, r.files.Key, err))
	}
	var cas *x509.CertPool
	if caPEM != nil {
		cas = x509.NewCertPool()
		if !cas.AppendCertsFromPEM(caPEM) {
			return r.fail(fmt.Errorf("tls client ca %s: no PEM certificate in it", r.files.ClientCA))
		}
	}
	r.mu.Lock()
	r.certPEM, r.keyPEM, r.caPEM, r.cert, r.clientCAs = certPEM, keyPEM, caPEM, &cert, cas
	r.mu.Unlock()
	r.mark(nil)
	return nil
}

func (r *Reloader) fail(err error) error {
	r.mark(err)
	return err
}

func (r *Reloader) mark(err error) {
	r.mu.Lock()
	r.checked, r.lastErr = time.Now(), err
	r.mu.Unlock()
}
