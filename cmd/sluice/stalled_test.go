package main

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// stall opens a connection to addr and sends a request whose body stops
// after 10 of its 100 bytes, then holds the connection open.
func stall(t *testing.T, addr, path string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"domain\":", path, addr); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestSIGTERMWithStalledClientsExitsZero: clients that sent half a body
// (and one that only connected) do not hold sluice past its drain: SIGTERM
// still ends in exit 0, within the drain timeout and a margin.
func TestSIGTERMWithStalledClientsExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a sluice process")
	}
	httpAddr, healthAddr, adminAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	cmd := sluiceProcess(t, nil, "serve", "--config", "../../deploy/examples/sluice.yaml",
		"--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--health-addr", healthAddr, "--admin-addr", adminAddr)
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	done := startProcess(t, cmd)
	waitReady(t, "http://"+httpAddr+"/readyz", &logs)

	stall(t, httpAddr, "/v1/ratelimit:check")
	stall(t, httpAddr, "/json")
	stall(t, adminAddr, "/v1/limits")
	stall(t, healthAddr, "/healthz")
	idle, err := net.Dial("tcp", httpAddr) // connected, never sends a byte
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idle.Close() })
	time.Sleep(200 * time.Millisecond) // the requests are being read

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	const bound = 10*time.Second + 5*time.Second // the default drain timeout, and a margin
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM with stalled clients: %v after %v; logs:\n%s", err, time.Since(start), logs.String())
		}
	case <-time.After(bound):
		t.Fatalf("still running %v after SIGTERM; logs:\n%s", bound, logs.String())
	}
}

// TestAHalfSentBodyIsCutOff: the connection of a request whose body never
// completes is answered and closed by the server's read timeout rather than
// held open for ever.
func TestAHalfSentBodyIsCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a sluice process")
	}
	httpAddr := freeAddr(t)
	cmd := sluiceProcess(t, nil, "serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", "off")
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	startProcess(t, cmd)
	waitReady(t, "http://"+httpAddr+"/readyz", &logs)

	conn := stall(t, httpAddr, "/v1/ratelimit:check")
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	answer, err := io.ReadAll(conn) // until the server closes the connection
	if err != nil {
		t.Fatalf("connection still open after %v: %v (answer so far %q)", time.Since(start), err, answer)
	}
	t.Logf("closed after %v with %q", time.Since(start), answer)
}
