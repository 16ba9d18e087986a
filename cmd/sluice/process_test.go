package main

import (
	"net/http"
	"os"
	"os/exec"
	"testing"

	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/internal/syncbuf"
)

// runAsSluice, set to 1 in a child's environment, makes the test binary run
// main instead of the tests (TestMain): a test gets a real sluice process
// without building one (the test binary is already built, with -race).
const runAsSluice = "SLUICE_TEST_RUN_AS_MAIN"

// sluiceProcess returns a command that runs `sluice args...` as its own
// process, with the test's environment plus env.
func sluiceProcess(t testing.TB, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runAsSluice+"=1"), env...)
	return cmd
}

// startProcess starts cmd and returns a channel that receives what
// cmd.Wait returns. When the test ends the process is killed, if it still
// runs, and waited for.
func startProcess(t testing.TB, cmd *exec.Cmd) <-chan error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done, exited := make(chan error, 1), make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return done
}

// waitReady waits for url (a sluice /readyz) to answer 200, as
// sluicetest.WaitReady does; when it never does, the test fails with logs,
// what the sluice wrote, beside the error.
func waitReady(t testing.TB, url string, logs *syncbuf.Buffer) {
	t.Helper()
	ready := false
	defer func() {
		if !ready {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	sluicetest.WaitReady(t, http.DefaultClient, url, true)
	ready = true
}
