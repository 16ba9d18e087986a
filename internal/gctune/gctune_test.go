package gctune

import (
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })

	if got := Tune(func(string) string { return "" }); got != Percent {
		t.Errorf("without GOGC: Tune = %d, want %d", got, Percent)
	}
	if now := debug.SetGCPercent(100); now != Percent {
		t.Errorf("without GOGC: the runtime has %d, want %d", now, Percent)
	}
	// With GOGC set, the runtime already applied it at start; Tune keeps it.
	debug.SetGCPercent(150)
	if got := Tune(func(k string) string { return map[string]string{"GOGC": "150"}[k] }); got != 150 {
		t.Errorf("with GOGC=150: Tune = %d, want 150", got)
	}
	if now := debug.SetGCPercent(100); now != 150 {
		t.Errorf("with GOGC=150: the runtime has %d, want 150 untouched", now)
	}
}
