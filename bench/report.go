package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// row is one measured run as the report prints it.
type row struct {
	name        string
	callers     int
	conns       int
	offered     float64 // calls per second scheduled; 0 = closed loop
	rate        float64 // decisions (calls) per second, errors excluded
	p50         time.Duration
	p99         time.Duration
	p999        time.Duration // 0 when unknown
	max         time.Duration
	errors      string
	overPct     float64 // -1 when not applicable
	scriptsPer  float64 // Redis script calls per call; -1 when unknown
	commandsPer float64 // Redis commands per call; -1 when unknown
	cpuSluice   float64 // cores busy over the run; -1 when unknown
	cpuRedis    float64
	cpuBench    float64
	cpuPerCall  float64 // µs of the server's CPU per call made; -1 when unknown
	redisPer    float64 // µs of redis-server's CPU per call made; -1 when unknown
	// sluice's own count (its /metrics), per call made; -1 when unknown
	leasedPct     float64 // share of decisions answered from leases alone
	leaseCallsPer float64 // lease calls (grants and returns) to Redis per call
}

// newRow summarises run r; before and after are the snapshots that bracket
// it (warm-up included).
func newRow(r *loadResult, before, after usage) *row {
	wall := after.at.Sub(before.at).Seconds()
	cores := func(a, b time.Duration) float64 {
		if a < 0 || b < 0 || wall <= 0 {
			return -1
		}
		return (b - a).Seconds() / wall
	}
	rs := after.redis.sub(before.redis)
	redisCPU := redisCPUBetween(before, after)
	w := &row{
		name:        r.name,
		callers:     r.callers,
		conns:       r.conns,
		offered:     r.offered,
		rate:        r.Rate(),
		p50:         r.hist.Quantile(0.50),
		p99:         r.hist.Quantile(0.99),
		p999:        r.hist.Quantile(0.999),
		max:         r.hist.Max(),
		errors:      r.ErrorSummary(),
		overPct:     -1,
		scriptsPer:  -1,
		commandsPer: -1,
		cpuSluice:   cores(before.serverCPU, after.serverCPU),
		cpuBench:    cores(before.benchCPU, after.benchCPU),
		cpuRedis:    cores(0, redisCPU),
		cpuPerCall:  cpuPerCall(before.serverCPU, after.serverCPU, r.allCalls),
		redisPer:    cpuPerCall(0, redisCPU, r.allCalls),
		leasedPct:   -1, leaseCallsPer: -1,
	}
	if !isNoop(r.name) {
		if n := r.hist.Count(); n > 0 {
			w.overPct = 100 * float64(r.over) / float64(n)
		}
		if r.allCalls > 0 {
			w.scriptsPer = float64(rs.scripts) / float64(r.allCalls)
			// the INFO call itself is one command of the delta
			w.commandsPer = float64(rs.commands-1) / float64(r.allCalls)
		}
	}
	return w
}

// redisCPUBetween is redis-server's CPU time between two snapshots: from
// /proc when both read it, else from its own INFO cpu.
func redisCPUBetween(before, after usage) time.Duration {
	if before.redisCPU >= 0 && after.redisCPU >= 0 {
		return after.redisCPU - before.redisCPU
	}
	return time.Duration(after.redis.sub(before.redis).cpu * float64(time.Second))
}

// cpuPerCall returns the microseconds of CPU a process used between two
// readings per call made in between, or -1 when unknown.
func cpuPerCall(before, after time.Duration, calls uint64) float64 {
	if before < 0 || after < 0 || calls == 0 {
		return -1
	}
	return float64(after-before) / float64(time.Microsecond) / float64(calls)
}

// report prints rows as they come, then the ratios and the paired runs'
// comparison.
type report struct {
	w      io.Writer
	o      *options
	rows   []*row
	redis  []*redisBenchResult
	paired []*pairedRow
}

func newReport(w io.Writer, o *options) *report { return &report{w: w, o: o} }

const rowFormat = "%-22s %7s %5s %7s %12s %9s %9s %9s %9s %6s %9s %8s %14s %8s %10s  %s\n"

func (r *report) header() {
	fmt.Fprintf(r.w, rowFormat, "run", "callers", "conns", "rate", "decisions/s", "p50", "p99", "p99.9", "max",
		"over%", "scripts/d", "cmds/d", "CPU s/r/b", "cpu µs/d", "redis µs/d", "errors")
}

func (r *report) add(w *row) {
	r.rows = append(r.rows, w)
	r.print(w)
}

// print prints one row of the main table.
func (r *report) print(w *row) {
	cpu := "-"
	if w.cpuSluice >= 0 && w.cpuRedis >= 0 && w.cpuBench >= 0 {
		cpu = fmt.Sprintf("%.2f/%.2f/%.2f", w.cpuSluice, w.cpuRedis, w.cpuBench)
	}
	fmt.Fprintf(r.w, rowFormat, w.name, fmt.Sprint(w.callers), fmt.Sprint(w.conns), fmtOffered(w.offered), fmtRate(w.rate),
		fmtDur(w.p50), fmtDur(w.p99), fmtDur(w.p999), fmtDur(w.max),
		fmtOpt(w.overPct, "%.1f"), fmtOpt(w.scriptsPer, "%.3f"), fmtOpt(w.commandsPer, "%.3f"), cpu,
		fmtOpt(w.cpuPerCall, "%.1f"), fmtOpt(w.redisPer, "%.1f"), w.errors)
}

// addRedis prints a redis-benchmark row; before and after bracket its run.
func (r *report) addRedis(b *redisBenchResult, before, after usage) {
	r.redis = append(r.redis, b)
	name := runRedis
	if b.pipeline > 1 {
		name = fmt.Sprintf("%s -P%d", runRedis, b.pipeline)
	}
	wall := after.at.Sub(before.at).Seconds()
	rs := after.redis.sub(before.redis)
	scripts, cmds, cpu, redisPer := "-", "-", "-", "-"
	redisCPU := redisCPUBetween(before, after).Seconds()
	if b.requests > 0 {
		scripts = fmt.Sprintf("%.3f", float64(rs.scripts)/float64(b.requests))
		cmds = fmt.Sprintf("%.3f", float64(rs.commands-1)/float64(b.requests))
		redisPer = fmt.Sprintf("%.1f", redisCPU*1e6/float64(b.requests))
	}
	if wall > 0 && before.serverCPU >= 0 && before.childCPU >= 0 {
		cpu = fmt.Sprintf("%.2f/%.2f/%.2f", (after.serverCPU-before.serverCPU).Seconds()/wall,
			redisCPU/wall, (after.childCPU-before.childCPU).Seconds()/wall)
	}
	fmt.Fprintf(r.w, rowFormat, name, fmt.Sprint(b.clients), "-", "-", fmtRate(b.rps),
		fmtDur(b.p50), fmtDur(b.p99), "-", fmtDur(b.max), "-", scripts, cmds, cpu, "-", redisPer, "-")
}

// ratios prints every decision row against the no-op call of the same
// process at the same caller count and offered rate: decisions/s ÷ no-op
// calls/s, and the CPU ratio no-op µs ÷ (server µs + Redis µs) per call —
// what one decision costs the machine against the cheapest call the same
// gRPC stack answers. Then sluice's rate against the redis-script rows.
func (r *report) ratios() {
	find := func(name string, callers int, offered float64) *row {
		for _, w := range r.rows {
			if w.name == name && w.callers == callers && w.offered == offered {
				return w
			}
		}
		return nil
	}
	if !slices.ContainsFunc(r.rows, func(w *row) bool { return !isNoop(w.name) }) {
		return // no decision rows (a sluice-paired run alone, say): nothing to set against the no-op
	}
	const format = "%-22s %7s %7s %12s %10s %10s %10s %14s %10s %8s %8s\n"
	fmt.Fprintf(r.w, "\nper decision, against the no-op call of the same process (same callers, same offered rate)\n")
	fmt.Fprintf(r.w, format, "run", "callers", "rate", "÷ no-op rate", "cpu µs/d", "redis µs/d", "no-op µs", "no-op÷(cpu+r)", "scripts/d", "leased%", "leases/d")
	for _, w := range r.rows {
		if isNoop(w.name) {
			continue
		}
		noop := find(noopOf(w.name), w.callers, w.offered)
		rate, cpu, noopCPU := "-", "-", "-"
		if noop != nil && noop.rate > 0 {
			rate = fmt.Sprintf("%.2f", w.rate/noop.rate)
		}
		if noop != nil && noop.cpuPerCall >= 0 {
			noopCPU = fmt.Sprintf("%.1f", noop.cpuPerCall)
			if w.cpuPerCall >= 0 && w.redisPer >= 0 && w.cpuPerCall+w.redisPer > 0 {
				cpu = fmt.Sprintf("%.2f", noop.cpuPerCall/(w.cpuPerCall+w.redisPer))
			}
		}
		fmt.Fprintf(r.w, format, w.name, fmt.Sprint(w.callers), fmtOffered(w.offered), rate,
			fmtOpt(w.cpuPerCall, "%.1f"), fmtOpt(w.redisPer, "%.1f"), noopCPU, cpu, fmtOpt(w.scriptsPer, "%.4f"),
			fmtOpt(w.leasedPct, "%.1f"), fmtOpt(w.leaseCallsPer, "%.4f"))
	}
	if len(r.redis) > 0 {
		fmt.Fprintf(r.w, "\nsluice decisions/s against the redis-script rows (%d clients, %d counter(s) per script call)\n", r.o.redisClients, r.o.descriptors)
		for _, w := range r.rows {
			if w.name != runSluice && w.name != runDirect && w.name != runSpread {
				continue
			}
			fmt.Fprintf(r.w, "%-22s %7d %7s", w.name, w.callers, fmtOffered(w.offered))
			for _, b := range r.redis {
				label := runRedis
				if b.pipeline > 1 {
					label = fmt.Sprintf("%s -P%d", runRedis, b.pipeline)
				}
				if b.rps > 0 {
					fmt.Fprintf(r.w, "  %s %.2f", label, w.rate/b.rps)
				}
			}
			fmt.Fprintln(r.w)
		}
	}
	if r.o.descriptors > 1 {
		fmt.Fprintf(r.w, "(each decision checks %d descriptors: descriptor checks/s = %d × decisions/s)\n", r.o.descriptors, r.o.descriptors)
	}
}

func fmtRate(f float64) string { return fmt.Sprintf("%.0f", f) }

// fmtOffered prints an offered rate as given ("2000", "0.5"), or "-" for a
// closed loop.
func fmtOffered(f float64) string {
	if f <= 0 {
		return "-"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func fmtOpt(f float64, format string) string {
	if f < 0 {
		return "-"
	}
	return fmt.Sprintf(format, f)
}

// fmtDur prints a latency with three significant digits in µs or ms.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return strings.TrimSuffix(fmt.Sprintf("%.2fs", d.Seconds()), "0")
	}
}
