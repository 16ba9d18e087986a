// Package version names the build of Sluice that is running: the version a
// release sets at link time,
//
//	go build -ldflags "-X github.com/sluice-rl/sluice/internal/version.Version=v1.2.0" ./cmd/sluice
//
// or else what the Go toolchain recorded in the binary: the module's version
// (go install ...@v1.2.0), or the VCS revision it was built from, with
// "-dirty" when the work tree had changes. A build with neither is "devel".
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags "-X ...internal/version.Version=..."; empty
// means "read it from the build info".
var Version string

// String is the running build's version (see the package comment).
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok)
}

// Go is the Go release and platform the binary was built with, e.g.
// "go1.26.0 linux/amd64".
func Go() string { return runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH }

// fromBuildInfo picks the version out of the toolchain's build info: a
// module version other than "(devel)" first, then the VCS revision (12 hex
// digits), else "devel".
func fromBuildInfo(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
