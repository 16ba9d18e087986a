package main

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	if got := tuneGC(func(string) string { return "" }); got != gcPercent {
		t.Errorf("without GOGC: tuneGC = %d, want %d", got, gcPercent)
	}
	if now := debug.SetGCPercent(100); now != gcPercent {
		t.Errorf("without GOGC: the runtime has %d, want %d", now, gcPercent)
	}
	// With GOGC set, the runtime already applied it at start; tuneGC keeps it.
	debug.SetGCPercent(150)
	if got := tuneGC(func(k string) string { return map[string]string{"GOGC": "150"}[k] }); got != 150 {
		t.Errorf("with GOGC=150: tuneGC = %d, want 150", got)
	}
	if now := debug.SetGCPercent(100); now != 150 {
		t.Errorf("with GOGC=150: the runtime has %d, want 150 untouched", now)
	}
}
