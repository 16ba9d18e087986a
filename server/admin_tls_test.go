package server_test

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/testcerts"
	"github.com/sluice-rl/sluice/server"
)

// TestAdminPortMutualTLS serves the admin port over mutual TLS like the
// other ports, without tokens: the client certificate names the caller in
// the audit trail, and a caller without one does not get in.
func TestAdminPortMutualTLS(t *testing.T) {
	ca := testcerts.NewCA(t, "sluice test ca")
	certs := ca.WriteDir(t, "sluice")
	clientTLS := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{ca.ClientCert(t, "deployer")}}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	t.Cleanup(client.CloseIdleConnections)
	s := startSluiceClient(t, server.Config{
		ConfigPath: writeConfig(t, apimConfig), RedisURL: redistest.New(t).URL(), AdminAddr: "127.0.0.1:0",
		TLSCertFile: certs.Cert("sluice"), TLSKeyFile: certs.Key("sluice"), TLSClientCAFile: certs.CA(),
	}, client, "https")

	req, _ := http.NewRequest("PUT", "https://"+s.AdminAddr()+pizzaThroughput, strings.NewReader(`{"sandbox": {"requests": 3, "window": "1m"}}`))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("put over mutual TLS: %d", resp.StatusCode)
	}
	resp, err = client.Get("https://" + s.AdminAddr() + "/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var audit map[string]any
	_ = json.Unmarshal(raw, &audit)
	if who := get(audit, "entries", 0, "who"); who == nil || !strings.HasPrefix(who.(string), "CN=deployer") {
		t.Errorf("audit who = %v, want the client certificate's subject: %s", who, raw)
	}

	noCert := clientTLS.Clone()
	noCert.Certificates = nil
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: noCert}}
	defer bare.CloseIdleConnections()
	if resp, err := bare.Get("https://" + s.AdminAddr() + "/v1/domains"); err == nil {
		_ = resp.Body.Close()
		t.Errorf("without a client certificate: %d, want the handshake to fail", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + s.AdminAddr() + "/v1/domains"); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered on a TLS admin port")
		}
	}
}
