package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// TestSIGTERMDrainsAndExitsZero runs sluice as its own process on the
// embedded store, and stops it with SIGTERM as Kubernetes does: it must exit
// 0 after draining.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a sluice process")
	}
	httpAddr := freeAddr(t)
	cmd := sluiceProcess(t, nil, "serve", "--config", "../../deploy/examples/sluice.yaml", "--http-addr", httpAddr, "--grpc-addr", freeAddr(t), "--admin-addr", freeAddr(t))
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	done := startProcess(t, cmd)
	waitReady(t, "http://"+httpAddr+"/readyz", &logs)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGTERM; logs:\n%s", logs.String())
	}
}
