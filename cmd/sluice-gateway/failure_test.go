package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// slack is what the race detector and a busy machine may add to the 50ms
// check timeout and a loopback backend call.
const slack = 450 * time.Millisecond

// blackhole accepts connections and never answers: a Sluice that hangs.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestSluiceDownFailsOpenOrClosedWithinTheTimeout(t *testing.T) {
	for _, mode := range []string{"open", "closed"} {
		t.Run(mode, func(t *testing.T) {
			s := startSluice(t)
			b := startBackends(t)
			g := startGateway(t, withTimeout(gatewayConfig(s.srv.GRPCAddr(), mode, b), "50ms"))
			// With Sluice up (a loaded machine may miss 50ms now and then:
			// this is the precondition, not what is tested).
			for i := 0; ; i++ {
				a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", "")
				if a.status == http.StatusOK {
					break
				}
				if i == 4 {
					t.Fatalf("with sluice up: %d %s", a.status, a.body)
				}
			}
			s.stop()
			for i := 0; i < 3; i++ {
				a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", "")
				checkFailure(t, mode, "sluice stopped", a, b)
			}
			// Counted apart from refusals over a limit.
			m := metrics(t, g)
			name := map[string]string{"open": "sluice_gateway_failed_open_total", "closed": "sluice_gateway_unavailable_total"}[mode]
			if m[name] != 3 || m["sluice_gateway_over_limit_total"] != 0 {
				t.Errorf("metrics %v, want %s 3 and no over-limit refusal", m, name)
			}
		})
		t.Run(mode+"/hanging", func(t *testing.T) {
			b := startBackends(t)
			cfg := strings.Replace(withTimeout(gatewayConfig(blackhole(t), mode, b), "50ms"), "drain_timeout: 5s", "drain_timeout: 200ms\nwarm_timeout: 200ms", 1)
			g := startGateway(t, cfg)
			a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", "")
			checkFailure(t, mode, "sluice hanging", a, b)
			a = call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "prod-key-1", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
			checkFailure(t, mode, "sluice hanging, ai", a, b)
		})
	}
}

// unavailableBody is the exact answer when Sluice does not answer and the
// gateway fails closed.
const unavailableBody = `{"fault":{"code":900810,"message":"Rate Limit Check Unavailable","description":"The API's limits could not be checked; the call was not sent to the backend"}}`

// metrics reads the gateway's /metrics into name → value.
func metrics(t *testing.T, g *gw) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.metrics+"/metrics", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(readAll(t, resp), "\n") {
		var name string
		var v float64
		if !strings.HasPrefix(line, "#") {
			if n, _ := fmt.Sscanf(line, "%s %g", &name, &v); n == 2 {
				out[name] = v
			}
		}
	}
	return out
}

// withTimeout sets the check timeout of a gateway config.
func withTimeout(config, timeout string) string {
	return strings.Replace(config, "timeout: 2s\n", "timeout: "+timeout+"\n", 1)
}

func checkFailure(t *testing.T, mode, what string, a answer, b *backends) {
	t.Helper()
	if a.took > 50*time.Millisecond+slack {
		t.Errorf("%s, fail %s: answered after %v", what, mode, a.took)
	}
	switch mode {
	case "open":
		if a.status != http.StatusOK || !contains(a.body, `"backend":"production"`) {
			t.Errorf("%s, fail open: %d %s, want 200 from the backend", what, a.status, a.body)
		}
		if got := a.header.Get("X-Sluice-Decision"); got != "failed-open" {
			t.Errorf("%s, fail open: X-Sluice-Decision %q, want failed-open", what, got)
		}
	case "closed":
		// An outage is not a cap: its own fault and header, never 900801.
		if a.status != http.StatusServiceUnavailable || a.body != unavailableBody {
			t.Errorf("%s, fail closed: %d %q, want 503 with the unavailable fault", what, a.status, a.body)
		}
		if got := a.header.Get("X-Sluice-Decision"); got != "unavailable" {
			t.Errorf("%s, fail closed: X-Sluice-Decision %q, want unavailable", what, got)
		}
		if a.header.Get("Retry-After") == "" {
			t.Errorf("%s, fail closed: no Retry-After", what)
		}
		if n := b.prod.Calls(); n > 1 {
			t.Errorf("%s, fail closed: backend saw %d calls", what, n)
		}
	}
}
