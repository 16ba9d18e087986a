package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTokens(t *testing.T) {
	ts, err := ParseTokens([]byte("# ops\nalice:a-1\n\n bob : b-2 \n"), true)
	if err != nil || len(ts) != 2 || ts[1] != (Token{Name: "bob", Secret: "b-2", ReadOnly: true}) {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, bad := range []string{"", "# only\n", "justatoken\n", "alice:\n", "al ice:x\n", "a:1\na:2\n", "a:1\nb:1\n"} {
		if _, err := ParseTokens([]byte(bad), false); err == nil {
			t.Errorf("%q: no error", bad)
		} else if strings.Contains(err.Error(), ":1\n") || strings.Contains(err.Error(), "b:1") {
			t.Errorf("%q: the error shows a token: %v", bad, err)
		}
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuthRereadsTheFiles(t *testing.T) {
	dir := t.TempDir()
	w, r := filepath.Join(dir, "w"), filepath.Join(dir, "r")
	write(t, w, "ops:one\n")
	write(t, r, "viewer:look\n")
	a, err := NewAuth(w, r)
	if err != nil {
		t.Fatal(err)
	}
	check := func(token string) (Principal, bool) { return a.Authenticate([]string{"Bearer " + token}, nil) }
	if p, ok := check("one"); !ok || p.Who != "ops" || p.ReadOnly {
		t.Errorf("ops: %+v %v", p, ok)
	}
	if p, ok := check("look"); !ok || p.Who != "viewer" || !p.ReadOnly {
		t.Errorf("viewer: %+v %v", p, ok)
	}
	if _, ok := a.Authenticate(nil, nil); ok {
		t.Error("no token passed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var reports []error
	var mu sync.Mutex
	wg.Go(func() {
		a.Watch(ctx, 10*time.Millisecond, func(err error) { mu.Lock(); reports = append(reports, err); mu.Unlock() })
	})
	defer func() { cancel(); wg.Wait() }()
	write(t, w, "ops:two\n")
	waitFor(t, func() bool { _, old := check("one"); _, cur := check("two"); return !old && cur })
	write(t, w, "broken\n") // keeps "two"
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(reports) > 0 })
	if _, ok := check("two"); !ok {
		t.Error("a broken file dropped the tokens")
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuthWithoutTokens(t *testing.T) {
	a, err := NewAuth("", "")
	if err != nil || a.Enabled() {
		t.Fatal(err)
	}
	if p, ok := a.Authenticate(nil, nil); !ok || p.Who != "anonymous" {
		t.Errorf("%+v %v", p, ok)
	}
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "deployer", Organization: []string{"platform"}}}}}
	if p, ok := a.Authenticate(nil, cs); !ok || p.Who != "CN=deployer,O=platform" {
		t.Errorf("client certificate: %+v %v", p, ok)
	}
	if _, err := NewAuth("", "r"); err == nil {
		t.Error("a read-only file alone was accepted")
	}
}
