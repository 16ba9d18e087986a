// Package sluicetest runs a Sluice server.Server inside a test: on loopback
// ports, quiet, and stopped (with its drain checked) when the test ends.
package sluicetest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/server"
)

// Server is a running server.Server.
type Server struct {
	*server.Server
	stop func() error
}

// Start runs a server with cfg until the test ends. Unset addresses become
// 127.0.0.1:0 and an unset logger discards; the rest of cfg is the caller's.
// It does not wait for readiness (see WaitReady).
func Start(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = "127.0.0.1:0"
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	s := &Server{Server: srv}
	s.stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("sluice Run: %v", err)
		}
	})
	return s
}

// Stop stops the server the way SIGTERM does and returns what Run returned;
// later calls return the same.
func (s *Server) Stop() error { return s.stop() }

// Readyz asks the server's /readyz once, over plain HTTP, and returns the
// status code and the body.
func (s *Server) Readyz(t testing.TB) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// WaitReady polls url (a /readyz) with client until it answers 200 (want
// true) or anything else (want false), for up to 15 seconds (a server in a
// process of its own, started on a loaded machine, may take that long).
func WaitReady(t testing.TB, client *http.Client, url string, want bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if (resp.StatusCode == http.StatusOK) == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered ready=%v (last error: %v)", url, want, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
