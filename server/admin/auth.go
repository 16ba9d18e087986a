package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-rl/sluice/server/grpcapi"
)

// Token is one admin bearer token and the name the audit trail records for
// it.
type Token struct {
	Name, Secret string
	ReadOnly     bool
}

// ParseTokens reads a token file: one "name:token" per line, the name made
// of letters, digits and ._@- ; blank lines and lines starting with # are
// skipped. Names and tokens must be unique.
func ParseTokens(data []byte, readOnly bool) ([]Token, error) {
	var out []Token
	names, secrets := map[string]bool{}, map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, secret, ok := strings.Cut(line, ":")
		name, secret = strings.TrimSpace(name), strings.TrimSpace(secret)
		switch {
		case !ok || secret == "":
			return nil, fmt.Errorf("line %d: want name:token", i+1)
		case !validName(name):
			return nil, fmt.Errorf("line %d: name %q: use letters, digits and ._@-", i+1, name)
		case names[name]:
			return nil, fmt.Errorf("line %d: name %q: given twice", i+1, name)
		case secrets[secret]:
			return nil, fmt.Errorf("line %d: the token of %q is another name's too", i+1, name)
		}
		names[name], secrets[secret] = true, true
		out = append(out, Token{Name: name, Secret: secret, ReadOnly: readOnly})
	}
	if len(out) == 0 {
		return nil, errors.New("no tokens (want name:token lines)")
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("._@-", c)) {
			return false
		}
	}
	return true
}

// Principal is who made an admin call.
type Principal struct {
	// Who is the token's name, else the client certificate's subject, else
	// "anonymous" (no tokens configured, plain or one-way TLS).
	Who      string
	ReadOnly bool
}

// Auth checks admin calls against the token files, which it rereads when
// they change. Without token files every call is allowed.
type Auth struct {
	writeFile, readFile string
	tokens              atomic.Pointer[[]Token]
	seen                [2][]byte // the files' contents last loaded
}

// NewAuth loads the token files: writeFile's tokens may read and write,
// readFile's only read. Both empty: no tokens, every call is allowed.
func NewAuth(writeFile, readFile string) (*Auth, error) {
	a := &Auth{writeFile: writeFile, readFile: readFile}
	if readFile != "" && writeFile == "" {
		return nil, errors.New("admin read token file: needs an admin token file too")
	}
	if err := a.load(); err != nil {
		return nil, err
	}
	return a, nil
}

// Enabled reports whether calls need a token.
func (a *Auth) Enabled() bool { return a.writeFile != "" }

func (a *Auth) load() error {
	var all []Token
	var seen [2][]byte
	for i, f := range []struct {
		path     string
		readOnly bool
	}{{a.writeFile, false}, {a.readFile, true}} {
		if f.path == "" {
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("admin token file: %w", err)
		}
		ts, err := ParseTokens(data, f.readOnly)
		if err != nil {
			return fmt.Errorf("admin token file %s: %w", f.path, err)
		}
		all = append(all, ts...)
		seen[i] = data
	}
	names := map[string]bool{}
	for _, t := range all {
		if names[t.Name] {
			return fmt.Errorf("admin token files: name %q is in both files", t.Name)
		}
		names[t.Name] = true
	}
	a.tokens.Store(&all)
	a.seen = seen
	return nil
}

// Watch rereads the token files every interval until ctx is done; a file
// that does not load keeps the previous tokens and goes to report.
func (a *Auth) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	if !a.Enabled() {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.unchanged() {
			continue
		}
		if err := a.load(); err != nil {
			if err.Error() != lastErr {
				report(err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
	}
}

func (a *Auth) unchanged() bool {
	for i, path := range []string{a.writeFile, a.readFile} {
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(data, a.seen[i]) {
			return false
		}
	}
	return true
}

// Authenticate finds who calls: with tokens, the token's holder (ok false
// without a valid one); without, the client certificate's subject or
// "anonymous".
func (a *Auth) Authenticate(authorization []string, cs *tls.ConnectionState) (Principal, bool) {
	if !a.Enabled() {
		if cs != nil && len(cs.PeerCertificates) > 0 {
			return Principal{Who: cs.PeerCertificates[0].Subject.String()}, true
		}
		return Principal{Who: "anonymous"}, true
	}
	for _, t := range *a.tokens.Load() {
		if grpcapi.ValidBearer(authorization, t.Secret) {
			return Principal{Who: t.Name, ReadOnly: t.ReadOnly}, true
		}
	}
	return Principal{}, false
}

// Require wraps an admin handler: a call needs a valid token (401), and a
// read-only token may only GET or HEAD (403). The principal and the
// caller's address travel on in the request's context.
func (a *Auth) Require(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.Authenticate(r.Header.Values("Authorization"), r.TLS)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice admin"`)
			writeStatus(w, http.StatusUnauthorized, 16, "authorization: a valid admin bearer token is required")
			return
		}
		if p.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeStatus(w, http.StatusForbidden, 7, fmt.Sprintf("authorization: the token of %q may only read", p.Who))
			return
		}
		h.ServeHTTP(w, r.WithContext(withCaller(r.Context(), caller{Principal: p, Remote: r.RemoteAddr})))
	})
}

// caller is an authenticated caller and its address.
type caller struct {
	Principal
	Remote string
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (caller, bool) {
	c, ok := ctx.Value(callerKey{}).(caller)
	return c, ok
}
