package main

import (
	"context"
	"io"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/server/config"
)

// TestArmOfSplitsEveryPair: each pair of slots (2k, 2k+1) makes one call of
// each arm, the decision first in about half of the pairs, so neither arm
// has more than two slots in a row.
func TestArmOfSplitsEveryPair(t *testing.T) {
	const seed, pairs = 42, 10_000
	decisionFirst, run, longest := 0, 0, 0
	var prev arm = -1
	for j := uint64(0); j < 2*pairs; j++ {
		a := armOf(seed, j)
		if a == prev {
			run++
		} else {
			run = 1
		}
		longest, prev = max(longest, run), a
		if j%2 == 1 {
			if armOf(seed, j-1) == a {
				t.Fatalf("slots %d and %d both make arm %d", j-1, j, a)
			}
			if a == armNoop {
				decisionFirst++
			}
		}
	}
	if decisionFirst < pairs*45/100 || decisionFirst > pairs*55/100 {
		t.Errorf("the decision came first in %d of %d pairs, want about half", decisionFirst, pairs)
	}
	if longest > 2 {
		t.Errorf("%d slots in a row of one arm, want at most 2", longest)
	}
	same := 0
	for j := range uint64(1000) {
		if armOf(seed, j) == armOf(seed+1, j) {
			same++
		}
	}
	if same < 400 || same > 600 {
		t.Errorf("seeds 42 and 43 agree on %d of 1000 slots, want about half: the seed should draw the order", same)
	}
}

// TestArmOfReachesEveryCaller: a caller that takes every n-th slot (as an
// idle caller of n does) makes both calls about equally often, for an even n
// too, where a strict alternation would give it only one.
func TestArmOfReachesEveryCaller(t *testing.T) {
	const callers, rounds = 64, 4000
	for i := range uint64(callers) {
		decisions := 0
		for r := range uint64(rounds) {
			if armOf(9, r*callers+i) == armTested {
				decisions++
			}
		}
		if decisions < rounds*45/100 || decisions > rounds*55/100 {
			t.Errorf("caller %d made %d decisions in %d calls, want about half", i, decisions, rounds)
		}
	}
}

// armCall is a fake call that takes d and counts its calls.
func armCall(d time.Duration, n *atomic.Int64) callFunc {
	call := slowCall(d)
	return func(ctx context.Context) (bool, error) {
		n.Add(1)
		return call(ctx)
	}
}

// TestPairedLoadRecordsEachArm: over one schedule, each slot makes its arm's
// call and is recorded under that arm, with the latency of that call: the
// fake decision takes 3ms and the fake no-op nothing.
func TestPairedLoadRecordsEachArm(t *testing.T) {
	const callers = 8
	var made [arms]atomic.Int64
	var calls [arms][]callFunc
	for range callers {
		calls[armTested] = append(calls[armTested], armCall(3*time.Millisecond, &made[armTested]))
		calls[armNoop] = append(calls[armNoop], armCall(0, &made[armNoop]))
	}
	r, err := pairedLoad(t.Context(), runPaired, 1, 1000, 50*time.Millisecond, 400*time.Millisecond, calls, 5)
	if err != nil {
		t.Fatal(err)
	}
	dec, noop := r.arms[armTested], r.arms[armNoop]
	if dec.name != "sluice-paired/sluice" || noop.name != "sluice-paired/noop" || dec.offered != 1000 || dec.callers != callers {
		t.Errorf("arm results %q %q at %v/s with %d callers", dec.name, noop.name, dec.offered, dec.callers)
	}
	for a := range arms {
		if got, want := r.arms[a].allCalls, uint64(made[a].Load()); got != want {
			t.Errorf("arm %d: %d calls counted, %d made", a, got, want)
		}
		if got := len(r.samples[a]); uint64(got) != r.arms[a].hist.Count() {
			t.Errorf("arm %d: %d samples, %d in the histogram", a, got, r.arms[a].hist.Count())
		}
	}
	// 450 slots in all, 400 of them due in the window, split in pairs; a
	// busy machine may push a few past the window's end.
	if n, d := int(noop.hist.Count()), int(dec.hist.Count()); n < 150 || d < 150 || n > 201 || d > 201 || max(n-d, d-n) > 20 {
		t.Errorf("%d decisions and %d no-op calls in the window, want about 200 each", d, n)
	}
	if p50 := dec.hist.Quantile(0.5); p50 < 3*time.Millisecond {
		t.Errorf("decisions' p50 %v, want at least the fake decision's 3ms", p50)
	}
	if p50 := noop.hist.Quantile(0.5); p50 >= 3*time.Millisecond {
		t.Errorf("no-op calls' p50 %v, want below the fake decision's 3ms", p50)
	}
	for a := range arms {
		for _, s := range r.samples[a] {
			if s.due >= 400*time.Millisecond || s.latency < 0 {
				t.Fatalf("arm %d: sample %+v is due after the window or negative", a, s)
			}
		}
	}
}

// TestNewPairedRow: only the run's total CPU is known, so the arms' rows
// carry none and the paired row divides it by every call of either arm; the
// Redis work is the decisions'.
func TestNewPairedRow(t *testing.T) {
	start := time.Now()
	before := usage{at: start, serverCPU: time.Second, redisCPU: 0, benchCPU: 0, redis: redisStats{scripts: 100, commands: 1000}}
	after := usage{at: start.Add(2 * time.Second), serverCPU: 3 * time.Second, redisCPU: time.Second, benchCPU: time.Second,
		redis: redisStats{scripts: 140, commands: 1201}}
	r := tenThousandCallsEach(runPaired)
	p := newPairedRow(r, before, after, time.Second)
	// 2s of sluice CPU over 20000 calls; 1s of Redis CPU.
	if p.cpuPerCall != 100 || p.redisPer != 50 || p.cpuSluice != 1 || p.cpuRedis != 0.5 {
		t.Errorf("CPU %v µs and Redis %v µs per call, %v and %v cores; want 100, 50, 1 and 0.5", p.cpuPerCall, p.redisPer, p.cpuSluice, p.cpuRedis)
	}
	for a, w := range p.arms {
		if w.cpuPerCall != -1 || w.redisPer != -1 || w.cpuSluice != -1 {
			t.Errorf("arm %d row: CPU %v µs per call, %v cores; want unknown", a, w.cpuPerCall, w.cpuSluice)
		}
	}
	if dec := p.arms[armTested]; dec.scriptsPer != 0.004 || dec.overPct != 0 {
		t.Errorf("decisions: %v scripts per decision, over %v%%; want 40/10000 and 0", dec.scriptsPer, dec.overPct)
	}
	if noop := p.arms[armNoop]; noop.scriptsPer != -1 || noop.commandsPer != -1 || noop.overPct != -1 {
		t.Errorf("no-op calls: scripts %v, commands %v, over %v; want unknown", noop.scriptsPer, noop.commandsPer, noop.overPct)
	}
	if p.leasedPct != -1 || p.offered != 2000 || p.callers != 64 || p.name != runPaired {
		t.Errorf("leased %v, offered %v, callers %d, name %q", p.leasedPct, p.offered, p.callers, p.name)
	}
	// In the A/A run both arms are the no-op call: no Redis work to count.
	r.name = runNoopPaired
	for a, res := range r.arms {
		res.name = pairedArms[runNoopPaired][a].row
	}
	for a, w := range newPairedRow(r, before, after, time.Second).arms {
		if w.scriptsPer != -1 || w.overPct != -1 || w.name != pairedArms[runNoopPaired][a].row {
			t.Errorf("noop-paired arm %d (%s): scripts %v, over %v; want unknown", a, w.name, w.scriptsPer, w.overPct)
		}
	}
}

func TestPairedTable(t *testing.T) {
	var out strings.Builder
	rep := newReport(&out, &options{})
	rep.pairedTable()
	if out.Len() != 0 {
		t.Errorf("no paired run: printed %q", out.String())
	}
	w := func(name string) *row {
		return &row{name: name, callers: 64, conns: 4, offered: 1000, cpuPerCall: -1, redisPer: -1, cpuSluice: -1}
	}
	rows := pairedArms[runPaired]
	rep.addPaired(&pairedRow{
		name: runPaired, arms: [arms]*row{w(rows[armTested].row), w(rows[armNoop].row)}, callers: 64, offered: 1000,
		stats: pairedStats{
			tested: armStats{n: 2500, p50: 305 * time.Microsecond, p90: 410 * time.Microsecond, p99: 1200 * time.Microsecond},
			noop:   armStats{n: 2500, p50: 300 * time.Microsecond, p90: 400 * time.Microsecond, p99: 1100 * time.Microsecond},
			diff:   5 * time.Microsecond, lo: 1500 * time.Nanosecond, hi: 8200 * time.Nanosecond,
			perSecond: []time.Duration{4 * time.Microsecond, -2 * time.Microsecond, noDiff},
		},
		cpuSluice: 0.25, cpuRedis: 0.01, cpuBench: 0.3, cpuPerCall: 240, redisPer: 4.2, leasedPct: 96.5,
	})
	rep.pairedTable()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], rows[armTested].row+" ") || !strings.HasPrefix(lines[1], rows[armNoop].row+" ") {
		t.Fatalf("want the two arms' rows first:\n%s", out.String())
	}
	last := lines[len(lines)-1]
	for _, want := range []string{runPaired + " ", "2500/2500", "305µs", "1.20ms", "+5.0", "[+1.5, +8.2]", "96.5", "0.25/0.01/0.30", "240.0", "4.2", "+4.0 -2.0 -"} {
		if !strings.Contains(last, want) {
			t.Errorf("paired row %q lacks %q", last, want)
		}
	}
	if !strings.Contains(out.String(), "both arms' together") {
		t.Error("the table should say its CPU is both arms' together")
	}
}

func TestPairedNeedsAnOpenLoop(t *testing.T) {
	for _, run := range pairedRuns {
		if _, err := parseOptions([]string{"-runs", run}, io.Discard); err == nil || !strings.Contains(err.Error(), "-rate") {
			t.Errorf("%s in a closed loop: %v, want an error naming -rate", run, err)
		}
	}
	if _, err := parseOptions([]string{"-runs", runPaired, "-rate", "1000,0"}, io.Discard); err == nil {
		t.Error("sluice-paired with a 0 among the rates: want an error")
	}
	o, err := parseOptions([]string{"-runs", runPaired, "-rate", "1000,2000"}, io.Discard)
	if err != nil || !o.has(runPaired) {
		t.Errorf("sluice-paired at 1000,2000/s: %v, runs %v", err, o.runs)
	}
	for _, args := range [][]string{nil, {"-ratelimit-bin", "/x/ratelimit"}} {
		o, err := parseOptions(args, io.Discard)
		if err != nil || slices.ContainsFunc(o.runs, isPaired) {
			t.Errorf("default runs with %q: %v, %v; want no paired run (the default is a closed loop)", args, err, o.runs)
		}
	}
}

// TestUnmatchedCallMatchesNoLimit: the unmatched-paired run's baseline call
// is answered without a counter only while no rule of the generated config
// names its key, and it has the decision's size only while its key is as
// long as the decision's.
func TestUnmatchedCallMatchesNoLimit(t *testing.T) {
	path, err := writeConfig(t.TempDir(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := config.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dom.Match([]config.Entry{{Key: keyOpen, Value: descriptorValue(0)}}); !ok {
		t.Errorf("%s=%s matches no rule: the decision arm would decide nothing", keyOpen, descriptorValue(0))
	}
	if r, ok := dom.Match([]config.Entry{{Key: keyUnmatched, Value: descriptorValue(0)}}); ok {
		t.Errorf("%s=%s matches a rule (%v): the unmatched arm would charge a counter", keyUnmatched, descriptorValue(0), r.Limits)
	}
	if len(keyUnmatched) != len(keyOpen) {
		t.Errorf("keys %q and %q differ in length: the two arms' requests would differ in size", keyUnmatched, keyOpen)
	}
}

// TestUnmatchedPairedRow: in unmatched-paired the decision arm carries the
// run's Redis work and over%, the unmatched arm none (it charges nothing).
func TestUnmatchedPairedRow(t *testing.T) {
	start := time.Now()
	before := usage{at: start, redis: redisStats{scripts: 100, commands: 1000}}
	after := usage{at: start.Add(2 * time.Second), serverCPU: time.Second, redis: redisStats{scripts: 140, commands: 1200}}
	r := tenThousandCallsEach(runUnmatchedPaired)
	p := newPairedRow(r, before, after, time.Second)
	if dec := p.arms[armTested]; dec.scriptsPer != 0.004 || dec.commandsPer <= 0 || dec.overPct != 0 {
		t.Errorf("decisions: scripts %v, commands %v, over %v; want 0.004, some and 0", dec.scriptsPer, dec.commandsPer, dec.overPct)
	}
	if un := p.arms[armNoop]; un.scriptsPer != -1 || un.commandsPer != -1 || un.overPct != -1 || un.name != runUnmatchedPaired+"/unmatched" {
		t.Errorf("unmatched calls (%s): scripts %v, commands %v, over %v; want unknown", un.name, un.scriptsPer, un.commandsPer, un.overPct)
	}
}

// tenThousandCallsEach is a result of paired run name whose two arms made
// 10,000 calls each, 64 callers on 4 connections offered 2,000/s for a
// second, every call 1 ms.
func tenThousandCallsEach(name string) *pairedResult {
	r := &pairedResult{name: name}
	for a := range r.arms {
		r.arms[a] = &loadResult{name: pairedArms[name][a].row, callers: 64, conns: 4, offered: 2000, elapsed: time.Second, allCalls: 10_000}
		r.arms[a].hist.Record(time.Millisecond)
		r.samples[a] = []sample{{latency: time.Millisecond}}
	}
	return r
}
