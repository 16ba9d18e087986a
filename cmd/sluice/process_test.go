package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

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

// inProcess is `sluice args...` run inside the test's process: run, as main
// calls it.
type inProcess struct {
	logs    syncbuf.Buffer // what run wrote, to stdout and stderr
	done    chan struct{}  // closed when run has returned err
	err     error
	cancel  context.CancelFunc
	stopped bool
}

// serveInProcess calls run(args, getenv) in the background. Unless the test
// stops it (stop), it is stopped when the test ends, and an error from run
// fails the test.
func serveInProcess(t *testing.T, args []string, getenv func(string) string) *inProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{done: make(chan struct{}), cancel: cancel}
	go func() {
		p.err = run(ctx, args, getenv, &p.logs, &p.logs)
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.stopped {
			if err := p.stop(t); err != nil {
				t.Errorf("serve: %v\n%s", err, p.logs.String())
			}
		}
	})
	return p
}

// stop cancels run's context, as SIGTERM does main's, and returns what run
// returned. A run that has not returned 15 s later fails the test.
func (p *inProcess) stop(t *testing.T) error {
	t.Helper()
	p.stopped = true
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(15 * time.Second):
		t.Errorf("serve did not return within 15 s of its stop\n%s", p.logs.String())
		return nil
	}
}
