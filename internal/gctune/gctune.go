// Package gctune sets the garbage collector's target for the processes that
// run a Sluice server (cmd/sluice, and bench/sluiceprof so that its profiles
// match).
package gctune

import "runtime/debug"

// Percent is the GOGC sluice runs with unless GOGC is set. Sluice's live
// heap is a few MB and every decision allocates, so at the default of 100 the
// collector runs dozens of times a second; at 400 it took 12% less CPU per
// decision at 64 callers (bench: 45–47 → 40 µs of sluice CPU per decision,
// +9% decisions/s) for 33 → 44 MB of resident memory.
const Percent = 400

// Tune sets the garbage collector's target to Percent, unless the
// operator chose one with GOGC. It returns the percentage in force.
func Tune(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		p := debug.SetGCPercent(-1) // read it back: SetGCPercent returns the old value
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(Percent)
	return Percent
}
