package main

import (
	"fmt"
	"io"

	"github.com/sluice-rl/sluice/internal/version"
)

// isVersionCommand reports whether arg asks for the version: `sluice
// version`, `sluice --version` or `sluice -version`.
func isVersionCommand(arg string) bool {
	return arg == "version" || arg == "--version" || arg == "-version"
}

// printVersion writes "sluice <version> (<go release> <os>/<arch>)": the
// version set at link time with -ldflags "-X
// github.com/sluice-rl/sluice/internal/version.Version=...", else the one the
// toolchain recorded (see package version).
func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "sluice %s (%s)\n", version.String(), version.Go())
	return err
}
