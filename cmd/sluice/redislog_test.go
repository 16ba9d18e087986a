package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// TestJSONLogsWhileRedisIsDown: a real sluice process with --log-format
// json, its Redis stopped for 2 s while calls keep coming. Every line the
// process writes to stderr is a JSON record — go-redis' own lines too — and
// go-redis speaks at most once a second.
func TestJSONLogsWhileRedisIsDown(t *testing.T) {
	rs := redistest.New(t)
	httpAddr := freeAddr(t)
	cmd := sluiceProcess(t, nil, "serve", "--config", "../../deploy/examples/sluice.yaml", "--redis", rs.URL(),
		"--log-format", "json", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", "off")
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := startProcess(t, cmd)
	waitReady(t, "http://"+httpAddr+"/readyz", &stderr)

	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	check := `{"domain":"apim","descriptors":[{"entries":[{"key":"api","value":"PizzaShackAPI:1.0.0"},{"key":"environment","value":"sandbox"}]}]}`
	for until := time.Now().Add(2 * time.Second); time.Now().Before(until); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Post("http://"+httpAddr+"/v1/ratelimit:check", "application/json", strings.NewReader(check)); err == nil {
			_ = resp.Body.Close()
		}
	}
	if err := rs.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, "http://"+httpAddr+"/readyz", &stderr) // again, Redis is back
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15 s after SIGTERM")
	}

	clientLines := 0
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %q", line)
			continue
		}
		if rec["msg"] == "redis client" {
			clientLines++
		}
	}
	t.Logf("%d go-redis records", clientLines)
	if clientLines > 4 {
		t.Errorf("go-redis logged %d records while Redis was down for 2 s; want at most one a second", clientLines)
	}
}
