package main

import (
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
		})
		t.Run(mode+"/hanging", func(t *testing.T) {
			b := startBackends(t)
			cfg := strings.Replace(withTimeout(gatewayConfig(blackhole(t), mode, b), "50ms"), "drain_timeout: 5s", "drain_timeout: 200ms", 1)
			g := startGateway(t, cfg)
			a := call(t, g, http.MethodGet, "/pizzashack/1.0.0/menu", "prod-key-1", "")
			checkFailure(t, mode, "sluice hanging", a, b)
			a = call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "prod-key-1", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
			checkFailure(t, mode, "sluice hanging, ai", a, b)
		})
	}
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
	case "closed":
		if a.status != http.StatusServiceUnavailable || a.body != faultBody {
			t.Errorf("%s, fail closed: %d %q, want 503 with the fault", what, a.status, a.body)
		}
		if a.header.Get("Retry-After") == "" {
			t.Errorf("%s, fail closed: no Retry-After", what)
		}
		if n := b.prod.Calls(); n > 1 {
			t.Errorf("%s, fail closed: backend saw %d calls", what, n)
		}
	}
}
