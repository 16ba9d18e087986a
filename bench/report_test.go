package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCPUPerCall(t *testing.T) {
	if got := cpuPerCall(time.Second, 3*time.Second, 40_000); got != 50 {
		t.Errorf("2s of CPU over 40000 calls: %v µs, want 50", got)
	}
	for _, c := range []struct {
		before, after time.Duration
		calls         uint64
	}{{-1, time.Second, 10}, {0, -1, 10}, {0, time.Second, 0}} {
		if got := cpuPerCall(c.before, c.after, c.calls); got != -1 {
			t.Errorf("cpuPerCall(%v, %v, %d) = %v, want -1 (unknown)", c.before, c.after, c.calls, got)
		}
	}
}

func TestReportRateColumns(t *testing.T) {
	var out bytes.Buffer
	rep := newReport(&out, &options{callers: []int{64}, rates: []float64{0, 5000}, descriptors: 1})
	rep.header()
	start := time.Now()
	before := usage{at: start, serverCPU: time.Second, redisCPU: 0, benchCPU: 0}
	after := usage{at: start.Add(2 * time.Second), serverCPU: 2 * time.Second, redisCPU: time.Second / 2, benchCPU: time.Second}
	for _, offered := range []float64{0, 5000} {
		for _, name := range []string{runSluice, runNoop} {
			r := &loadResult{name: name, callers: 64, conns: 4, offered: offered, elapsed: time.Second, allCalls: 10_000}
			r.hist.Record(time.Millisecond)
			rep.add(newRow(r, before, after))
		}
	}
	rep.ratios()
	lines := strings.Split(out.String(), "\n")
	if f := strings.Fields(lines[0]); f[3] != "rate" || !strings.Contains(lines[0], "cpu µs/d") || !strings.Contains(lines[0], "redis µs/d") {
		t.Errorf("header %q: want a rate column, cpu µs/d and redis µs/d", lines[0])
	}
	if f := strings.Fields(lines[1]); f[3] != "-" || f[len(f)-3] != "100.0" || f[len(f)-2] != "50.0" {
		t.Errorf("closed-loop row %q: want rate -, 100.0 cpu µs/d (1 s / 10000 calls) and 50.0 redis µs/d", lines[1])
	}
	if f := strings.Fields(lines[3]); f[3] != "5000" {
		t.Errorf("open-loop row %q: want rate 5000", lines[3])
	}
	// sluice against grpc-noop: the same rate (1.00), and a CPU ratio of
	// 100 µs ÷ (100 µs + 50 µs) = 0.67, per offered rate.
	var ratioRows []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 11 && f[0] == runSluice {
			ratioRows = append(ratioRows, strings.Join([]string{f[1], f[2], f[3], f[7]}, " "))
		}
	}
	if want := []string{"64 - 1.00 0.67", "64 5000 1.00 0.67"}; strings.Join(ratioRows, "|") != strings.Join(want, "|") {
		t.Errorf("ratio rows %q, want %q\n%s", ratioRows, want, out.String())
	}
}
