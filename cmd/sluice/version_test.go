package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/version"
)

func TestVersionCommand(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{arg}, noEnv, &out, &errOut); err != nil {
			t.Fatalf("%s: %v\n%s", arg, err, errOut.String())
		}
		want := "sluice " + version.String() + " (" + version.Go() + ")\n"
		if out.String() != want {
			t.Errorf("%s printed %q, want %q", arg, out.String(), want)
		}
	}
}

// TestStartupLogNamesVersionStoreDomainsAndPorts runs serve with JSON logs
// and reads its "sluice serving" record: the version, the store's topology,
// hosts and TLS (never the password), each domain with its descriptor count,
// and every port. The Sentinels of the second case do not exist: the service
// starts unready, and says what it was pointed at.
func TestStartupLogNamesVersionStoreDomainsAndPorts(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"apim.yaml": "domain: apim\ndescriptors:\n  - key: api\n    value: PizzaShackAPI\n    descriptors:\n      - {key: environment, value: production, rate_limit: {unit: second, requests_per_unit: 5}}\n      - {key: environment, value: sandbox, rate_limit: {unit: second, requests_per_unit: 2}}\n",
		"rl.yaml":   "domain: rl\ndescriptors:\n  - {key: foo, rate_limit: {unit: minute, requests_per_unit: 2}}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, redis      string
		topology, master string
		hosts            []any
		tls              bool
	}{
		{name: "embedded", topology: "embedded"},
		{name: "sentinel over TLS", redis: "rediss+sentinel://app:hunter2@127.0.0.1:1,127.0.0.1:2/mymaster?sentinel_password=hunter3",
			topology: "sentinel", master: "mymaster", hosts: []any{"127.0.0.1:1", "127.0.0.1:2"}, tls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			grpcAddr, httpAddr, healthAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
			args := []string{"serve", "--config", dir, "--log-format", "json", "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
				"--health-addr", healthAddr, "--admin-addr", adminAddr}
			if tc.redis != "" {
				args = append(args, "--redis", tc.redis)
			}
			rec := serveUntilLogged(t, args, noEnv, "sluice serving")
			if rec["version"] != version.String() {
				t.Errorf("version %v, want %q", rec["version"], version.String())
			}
			store, _ := rec["store"].(map[string]any)
			if store["topology"] != tc.topology || store["tls"] != tc.tls {
				t.Errorf("store %v, want topology %s, tls %v", store, tc.topology, tc.tls)
			}
			if tc.hosts != nil && !equalJSON(store["hosts"], tc.hosts) {
				t.Errorf("store hosts %v, want %v", store["hosts"], tc.hosts)
			}
			if tc.master != "" && rec["store_master"] != tc.master {
				t.Errorf("store_master %v, want %s", rec["store_master"], tc.master)
			}
			if !equalJSON(rec["descriptors"], map[string]any{"apim": 3, "rl": 1}) {
				t.Errorf("descriptors %v, want apim 3 and rl 1", rec["descriptors"])
			}
			for key, want := range map[string]string{"grpc": grpcAddr, "http": httpAddr, "health": healthAddr, "admin": adminAddr} {
				if rec[key] != want {
					t.Errorf("%s = %v, want %s", key, rec[key], want)
				}
			}
			if raw, _ := json.Marshal(rec); bytes.Contains(raw, []byte("hunter")) {
				t.Errorf("the start-up record shows a password: %s", raw)
			}
		})
	}
}

// serveUntilLogged runs `sluice serve` with JSON logs until it logs a record
// with message msg, stops it, and returns that record.
func serveUntilLogged(t *testing.T, args []string, getenv func(string) string, msg string) map[string]any {
	t.Helper()
	sluice := serveInProcess(t, args, getenv)
	defer sluice.stop(t) // run's error after the stop: not what this helper looks for
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rec := logRecord(sluice.logs.String(), msg); rec != nil {
			return rec
		}
		select {
		case <-sluice.done:
			t.Fatalf("serve ended before logging %q: %v\n%s", msg, sluice.err, sluice.logs.String())
		default:
		}
	}
	t.Fatalf("no %q record within 15s:\n%s", msg, sluice.logs.String())
	return nil
}

// logRecord finds the JSON log record with message msg.
func logRecord(logs, msg string) map[string]any {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			return rec
		}
	}
	return nil
}

// equalJSON compares got (decoded JSON) with want, as JSON.
func equalJSON(got, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return bytes.Equal(a, b)
}
