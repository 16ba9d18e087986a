package main

import (
	"fmt"
	"strings"
	"time"
)

// addPaired prints a paired run's two arms as rows of the main table, without
// CPU (only the run's total is known), and keeps it for pairedTable.
func (r *report) addPaired(p *pairedRow) {
	r.paired = append(r.paired, p)
	for _, w := range p.arms {
		r.print(w)
	}
}

const pairedFormat = "%-14s %7s %7s %11s %8s %7s %7s %8s %7s %7s %8s %17s %8s %14s %11s %13s  %s\n"

// pairedTable compares the arms of every paired run: their exact
// percentiles, the difference of their medians with its 95% interval and
// second by second, and the CPU of both arms together.
func (r *report) pairedTable() {
	if len(r.paired) == 0 {
		return
	}
	fmt.Fprintf(r.w, "\npaired runs: the two arms' calls drawn at random per slot of one open-loop schedule, same callers and connections;\n")
	fmt.Fprintf(r.w, "arm 1 = %s's decision (ShouldRateLimit, hot counter) in %s and %s, %s's Check in %s (an A/A check: its Δ should be 0);\n",
		runSluice, runPaired, runUnmatchedPaired, runNoop, runNoopPaired)
	fmt.Fprintf(r.w, "arm 2 = %s's Check, in %s the same ShouldRateLimit on a key no rule matches (%s=…: OK without a counter);\n",
		runNoop, runUnmatchedPaired, keyUnmatched)
	fmt.Fprintf(r.w, "exact latencies from the scheduled time; Δp50 = arm 1 − arm 2, 95%% interval from a bootstrap over %v blocks of both arms;\n", bootstrapBlock)
	fmt.Fprintf(r.w, "CPU is both arms' together (per call of either arm): each arm's share is not known\n")
	fmt.Fprintf(r.w, pairedFormat, "run", "callers", "rate", "calls 1/2", "1: p50", "p90", "p99", "2: p50", "p90", "p99",
		"Δp50 µs", "95% interval µs", "leased%", "CPU s/r/b", "cpu µs/call", "redis µs/call", "Δp50 per second, µs")
	for _, p := range r.paired {
		s := p.stats
		interval := "-"
		if s.lo != 0 || s.hi != 0 {
			interval = fmt.Sprintf("[%s, %s]", fmtDelta(s.lo), fmtDelta(s.hi))
		}
		cpu := "-"
		if p.cpuSluice >= 0 && p.cpuRedis >= 0 && p.cpuBench >= 0 {
			cpu = fmt.Sprintf("%.2f/%.2f/%.2f", p.cpuSluice, p.cpuRedis, p.cpuBench)
		}
		perSecond := make([]string, len(s.perSecond))
		for i, d := range s.perSecond {
			perSecond[i] = fmtDelta(d)
		}
		diff := "-"
		if s.tested.n > 0 && s.noop.n > 0 {
			diff = fmtDelta(s.diff)
		}
		fmt.Fprintf(r.w, pairedFormat, p.name, fmt.Sprint(p.callers), fmtOffered(p.offered), fmt.Sprintf("%d/%d", s.tested.n, s.noop.n),
			fmtDur(s.tested.p50), fmtDur(s.tested.p90), fmtDur(s.tested.p99),
			fmtDur(s.noop.p50), fmtDur(s.noop.p90), fmtDur(s.noop.p99),
			diff, interval, fmtOpt(p.leasedPct, "%.1f"), cpu, fmtOpt(p.cpuPerCall, "%.1f"), fmtOpt(p.redisPer, "%.1f"),
			strings.Join(perSecond, " "))
	}
}

// fmtDelta prints a latency difference in µs with its sign ("+4.2"), or "-"
// for noDiff.
func fmtDelta(d time.Duration) string {
	if d == noDiff {
		return "-"
	}
	return fmt.Sprintf("%+.1f", float64(d)/float64(time.Microsecond))
}
