package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// TestPerConsumerLimitsUnderTheBackendCap: ShareAPI's backend takes 3 calls
// a minute, each consumer (key) 2 of them, so one tenant cannot take the
// whole cap.
func TestPerConsumerLimitsUnderTheBackendCap(t *testing.T) {
	s := startSluice(t)
	b := startBackends(t)
	cfg := gatewayConfig(s.srv.GRPCAddr(), "closed", b)
	cfg = strings.Replace(cfg, "apis:\n", "apis:\n  - {name: ShareAPI, version: 1.0.0, context: /share/1.0.0, per_consumer: key, production: "+b.prodURL+"}\n", 1)
	cfg = strings.Replace(cfg, "  - {key: prod-key-1, type: production}\n",
		"  - {key: prod-key-1, type: production, name: alice}\n  - {key: prod-key-2, type: production, name: bob}\n", 1)
	cfg = strings.Replace(cfg, "  - {key: sandbox-key-1, type: sandbox}\n", "  - {key: sandbox-key-1, type: sandbox, name: carol}\n", 1)
	g := startGateway(t, cfg)

	for i, tc := range []struct {
		key  string
		want int
	}{
		{"prod-key-1", 200}, {"prod-key-1", 200},
		{"prod-key-1", 503}, // alice's own limit: the cap still has room
		{"prod-key-2", 200}, // bob
		{"prod-key-2", 503}, // the backend cap: 3 calls in the minute
	} {
		if a := call(t, g, http.MethodGet, "/share/1.0.0/menu", tc.key, ""); a.status != tc.want {
			t.Errorf("call %d with %s: %d %s, want %d", i+1, tc.key, a.status, a.body, tc.want)
		}
	}
	resp, err := s.api(t).GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim", Descriptors: []*sluicev1.Descriptor{
		apiDescriptor("ShareAPI:1.0.0", "production"),
		{Entries: append(apiDescriptor("ShareAPI:1.0.0", "production").Entries, &sluicev1.Entry{Key: "consumer", Value: "alice"})},
		{Entries: append(apiDescriptor("ShareAPI:1.0.0", "production").Entries, &sluicev1.Entry{Key: "consumer", Value: "bob"})},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{3, 2, 1} {
		if got := resp.GetDescriptors()[i].GetLimits()[0].GetUsed(); got != want {
			t.Errorf("descriptor %d: used %d, want %d", i, got, want)
		}
	}
	if n := b.prod.Calls(); n != 3 {
		t.Errorf("the backend saw %d calls, want 3", n)
	}
}

func TestPerConsumerNeedsKeyNames(t *testing.T) {
	_, err := loadConfigText(t, `
listen: x
sluice: y
domain: apim
apis:
  - {name: A, version: "1", context: /a, per_consumer: application, production: "http://x"}
  - {name: B, version: "1", context: /b, per_consumer: tenant, production: "http://x"}
keys:
  - {key: k, type: production, name: kay}
`)
	if err == nil || !strings.Contains(err.Error(), "keys[0]: application required") || !strings.Contains(err.Error(), "apis[1].per_consumer") {
		t.Errorf("error %v", err)
	}
}
