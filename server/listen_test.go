package server_test

import (
	"net"
	"strings"
	"testing"

	"github.com/sluice-rl/sluice/server"
)

// TestNewReleasesPortsWhenOneIsTaken: when the health port is taken,
// server.New fails naming it and frees the gRPC and HTTP ports it had opened.
func TestNewReleasesPortsWhenOneIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	grpcAddr, httpAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	_, err = server.New(server.Config{
		ConfigPath: writeConfig(t, apimConfig),
		GRPCAddr:   grpcAddr, HTTPAddr: httpAddr, HealthAddr: taken.Addr().String(),
	})
	if err == nil || !strings.Contains(err.Error(), "health listen") {
		t.Fatalf("server.New with the health port taken: %v, want a health listen error", err)
	}
	for _, addr := range []string{grpcAddr, httpAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s is still held after the failed start: %v", addr, err)
			continue
		}
		_ = l.Close()
	}
}

// freeLoopbackAddr returns a loopback address nobody listens on right now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
