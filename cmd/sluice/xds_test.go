package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"

	"github.com/sluice-rl/sluice/internal/xdstest"
)

// TestServeTakesItsConfigOverXDSFromUpstreamsVariables runs `sluice serve`
// set up with envoyproxy/ratelimit's xDS variables only (and Sluice's
// ports): it subscribes as the named node, with the node metadata, enforces
// what the management server pushes and turns ready with it; the --config
// of a Deployment moved over is ignored with a warning.
func TestServeTakesItsConfigOverXDSFromUpstreamsVariables(t *testing.T) {
	cp := xdstest.Start(t, "127.0.0.1:0", nil)
	httpAddr := freeAddr(t)
	env := map[string]string{
		"CONFIG_TYPE":                         "GRPC_XDS_SOTW",
		"CONFIG_GRPC_XDS_SERVER_URL":          cp.Addr,
		"CONFIG_GRPC_XDS_NODE_ID":             "sluice-node",
		"CONFIG_GRPC_XDS_NODE_METADATA":       "zone=z1,team=edge",
		"XDS_CLIENT_BACKOFF_INITIAL_INTERVAL": "100ms",
		"XDS_CLIENT_BACKOFF_MAX_INTERVAL":     "1s",
		"SLUICE_CONFIG":                       "../../deploy/examples/sluice.yaml",
		"SLUICE_HTTP_ADDR":                    httpAddr,
		"SLUICE_GRPC_ADDR":                    freeAddr(t),
		"SLUICE_ADMIN_ADDR":                   "off",
	}
	sluice := serveInProcess(t, []string{"serve"}, envOf(env))

	first, _ := cp.WaitRequest(t, 0, "the first request", func(*discoveryv3.DiscoveryRequest) bool { return true })
	fields := first.GetNode().GetMetadata().GetFields()
	if first.GetNode().GetId() != "sluice-node" || fields["zone"].GetStringValue() != "z1" || fields["team"].GetStringValue() != "edge" {
		t.Errorf("first request's node: %v", first.GetNode())
	}
	if resp, err := http.Get("http://" + httpAddr + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("before the first config: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	cp.Push(t, "sluice-node", "1", &rlsconfv3.RateLimitConfig{Name: "apim", Domain: "apim", Descriptors: []*rlsconfv3.RateLimitDescriptor{{
		Key: "api", Value: "PizzaShackAPI:1.0.0", Descriptors: []*rlsconfv3.RateLimitDescriptor{{
			Key: "environment", Value: "sandbox", RateLimit: &rlsconfv3.RateLimitPolicy{Unit: rlsconfv3.RateLimitUnit_MINUTE, RequestsPerUnit: 2},
		}},
	}}})
	cp.WaitRequest(t, 0, "ACK of 1", xdstest.IsACK("1"))
	body := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`
	for i, want := range []string{`"OK"`, `"OK"`, `"OVER_LIMIT"`} {
		resp, err := http.Post("http://"+httpAddr+"/v1/ratelimit:check", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(buf.String(), `"overall_code":`+want) {
			t.Fatalf("call %d: %s, want %s", i+1, buf.String(), want)
		}
	}
	if resp, err := http.Get("http://" + httpAddr + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after the first config: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	for _, want := range []string{"--config is ignored", "config=xds://" + cp.Addr} {
		if !strings.Contains(sluice.logs.String(), want) {
			t.Errorf("logs lack %q:\n%s", want, sluice.logs.String())
		}
	}
}

func TestServeRefusesBadXDSSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown config type", []string{"serve", "--config-type", "consul"}, nil, `--config-type "consul": want file or grpc-xds-sotw`},
		{"upstream's unknown config type", []string{"serve"}, map[string]string{"CONFIG_TYPE": "ETCD"}, `--config-type "ETCD"`},
		{"bad backoff variable", []string{"serve", "--config-type", "grpc-xds-sotw"}, map[string]string{"XDS_CLIENT_BACKOFF_INITIAL_INTERVAL": "soon"},
			`XDS_CLIENT_BACKOFF_INITIAL_INTERVAL="soon": want a duration`},
		{"bad TLS variable", []string{"serve", "--config-type", "grpc-xds-sotw"}, map[string]string{"CONFIG_GRPC_XDS_SERVER_USE_TLS": "yes please"},
			`CONFIG_GRPC_XDS_SERVER_USE_TLS="yes please": want true or false`},
		{"files without --config", []string{"serve"}, nil, "--config (or SLUICE_CONFIG, or envoyproxy/ratelimit's RUNTIME_ROOT) is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, envOf(tc.env), &out, &errOut)
			if !errors.Is(err, errUsage) || !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("err %v, output %q; want a usage error saying %q", err, errOut.String(), tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"metadata without =", []string{"--xds-node-metadata", "zone"}, `--xds-node-metadata: "zone" is not key=value`},
		{"header without :", []string{"--xds-headers", "x-token=abc"}, `--xds-headers: "x-token=abc" is not key:value`},
		{"client certificate without key", []string{"--xds-tls-cert", "c.pem"}, "both a client certificate and a key"},
		{"random factor", []string{"--xds-backoff-random-factor", "1.5"}, "backoff random factor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"serve", "--config-type", "grpc-xds-sotw", "--admin-addr", "off", "--http-addr", freeAddr(t), "--grpc-addr", freeAddr(t)}, tc.args...)
			err := run(context.Background(), args, noEnv, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v; want %q", err, tc.want)
			}
		})
	}
}
