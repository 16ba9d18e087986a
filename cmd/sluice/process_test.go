package main

import (
	"os"
	"os/exec"
	"testing"
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
