package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The sluice-paired run puts the sluice run's call and the grpc-noop run's
// call on one open-loop schedule: each slot makes one or the other, over the
// same callers and connections, in the same seconds. Run one after the other,
// their medians differ by tens of µs of machine noise on a shared VM; paired,
// that noise hits both arms alike and drops out of their difference. The
// noop-paired run makes the no-op call on both arms: what the method shows
// when there is no difference. The unmatched-paired run sets the decision
// against the same RPC on a key no rule matches (answered OK without a
// counter): its difference leaves out what the two calls share — the
// method's messages, their encoding on both sides, the interceptors — and
// keeps the limit's own work (matching, the lease, the observer, the status).

// arm is which of the two calls a slot of a paired run makes.
type arm int

const (
	armTested arm = iota // the call under test: sluice's decision (the no-op in noop-paired)
	armNoop              // the baseline: grpc.health.v1 Check, as the grpc-noop run sends it (in unmatched-paired: the unmatched call)
	arms
)

// pairedArm is one arm of a paired run: the name of its row in the report and
// the run whose call it makes (callUnmatched: no run's).
type pairedArm struct{ row, run string }

// callUnmatched is the unmatched-paired run's baseline call: the sluice
// run's ShouldRateLimit with keyUnmatched for its key.
const callUnmatched = "unmatched"

// pairedArms are the arms of each paired run.
var pairedArms = map[string][arms]pairedArm{
	runPaired:          {{runPaired + "/sluice", runSluice}, {runPaired + "/noop", runNoop}},
	runNoopPaired:      {{runNoopPaired + "/noop1", runNoop}, {runNoopPaired + "/noop2", runNoop}},
	runUnmatchedPaired: {{runUnmatchedPaired + "/sluice", runSluice}, {runUnmatchedPaired + "/unmatched", callUnmatched}},
}

// decides reports whether the call of arm run decides a limit: only those
// charge counters, so only those have over%, scripts/d and cmds/d.
func decides(run string) bool { return run != callUnmatched && !isNoop(run) }

// armOf returns the arm of slot j of a schedule drawn with seed. The slots go
// in pairs (2k, 2k+1), one of each arm, in an order drawn from seed and k:
// both arms get the same number of slots, spread alike over the run, never
// more than two in a row. A strict alternation would not do: a caller takes
// about every n-th slot, so with an even number of callers each caller, and
// with it its connection, would make only one of the two calls.
func armOf(seed, j uint64) arm {
	first := arm(mix64(seed^(j/2)) & 1)
	return first ^ arm(j&1)
}

// mix64 is SplitMix64's finaliser: consecutive inputs give unrelated bits.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// pairedResult is what a paired run measured, per arm.
type pairedResult struct {
	name    string
	arms    [arms]*loadResult
	samples [arms][]sample // every call in the window, for the statistics
}

// pairedCaller is the private state of one calling goroutine of a paired
// run.
type pairedCaller struct {
	arms    [arms]caller
	samples [arms][]sample
}

// pairedLoad is runLoad for the paired run name: one goroutine per caller,
// caller i making calls[a][i] for the slots of arm a of one open-loop
// schedule of rate calls per second (rate > 0).
func pairedLoad(ctx context.Context, name string, conns int, rate float64, warmup, duration time.Duration, calls [arms][]callFunc, seed uint64) (*pairedResult, error) {
	start := time.Now()
	w := window{start: start.Add(warmup)}
	w.end = w.start.Add(duration)
	ctx, cancel := context.WithDeadline(ctx, w.end.Add(callTimeout))
	defer cancel()

	pace, stopPacing := startOpenLoop(ctx, rate, start, w.end)
	cs := make([]pairedCaller, len(calls[armTested]))
	perArm := int(rate*duration.Seconds())/(2*len(cs)) + 16
	var wg sync.WaitGroup
	for i := range cs {
		c := &cs[i]
		for a := range c.samples {
			c.samples[a] = make([]sample, 0, perArm)
		}
		wg.Go(func() { c.loop(ctx, [arms]callFunc{calls[armTested][i], calls[armNoop][i]}, pace, w, seed) })
	}
	wg.Wait()
	stopPacing()
	if err := ctx.Err(); err != nil && time.Now().Before(w.end) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	r := &pairedResult{name: name}
	for a := range r.arms {
		r.arms[a] = &loadResult{name: pairedArms[name][a].row, callers: len(cs), conns: conns, offered: rate, elapsed: duration}
		for i := range cs {
			r.arms[a].add(&cs[i].arms[a])
			r.samples[a] = append(r.samples[a], cs[i].samples[a]...)
		}
	}
	return r, nil
}

// loop is caller.loop with each slot's call chosen by armOf and recorded
// under its arm, with when it was due.
func (c *pairedCaller) loop(ctx context.Context, calls [arms]callFunc, pace *openLoop, w window, seed uint64) {
	for ctx.Err() == nil {
		j, due, ok := pace.nextSlot()
		if !ok || !due.Before(w.end) {
			return
		}
		a := armOf(seed, j)
		cctx, ccancel := context.WithTimeout(ctx, callTimeout)
		over, err := calls[a](cctx)
		end := time.Now()
		ccancel()
		c.arms[a].calls++
		if end.Before(w.start) {
			continue
		}
		if !end.Before(w.end) || aborted(ctx, err) {
			return
		}
		c.arms[a].record(end.Sub(due), over, err)
		c.samples[a] = append(c.samples[a], sample{due: due.Sub(w.start), latency: end.Sub(due)})
	}
}

// pairedRow is a paired run as the report prints it.
type pairedRow struct {
	name    string
	arms    [arms]*row // the main table's rows; CPU per call unknown in each
	callers int
	offered float64
	stats   pairedStats
	// Only the total CPU of the run is known, not each arm's share.
	cpuSluice, cpuRedis, cpuBench float64 // cores busy over the run; -1 when unknown
	cpuPerCall                    float64 // µs of sluice's CPU per call of either arm; -1 when unknown
	redisPer                      float64 // µs of redis-server's CPU per call of either arm; -1 when unknown
	leasedPct                     float64 // share of the tested arm's decisions answered from leases alone; -1 when unknown or not decisions
}

// pairedRun runs the paired run name with n callers at rate calls per second
// on sluice and measures it like grpcRun.
func pairedRun(ctx context.Context, o *options, name string, n int, rate float64, target *sluiceProc, redisPID int, rdb *redis.Client) (*pairedRow, error) {
	nconns := o.connsFor(n)
	conns, closeConns, err := dialConns(target.grpcAddr, nconns)
	if err != nil {
		return nil, err
	}
	defer closeConns()
	var calls [arms][]callFunc
	for a, arm := range pairedArms[name] {
		switch arm.run {
		case runSluice:
			calls[a] = shouldRateLimitCalls(o.api, keyOpen, o.descriptors, 1, n, conns)
		case runNoop:
			calls[a] = healthCalls(n, conns)
		case callUnmatched:
			calls[a] = shouldRateLimitCalls(o.api, keyUnmatched, o.descriptors, 1, n, conns)
		default:
			return nil, fmt.Errorf("%s: no calls for an arm of run %q", name, arm.run)
		}
	}

	mBefore, okBefore := readServerMetrics(ctx, target.httpAddr)
	before, err := snapshot(ctx, target.pid(), redisPID, rdb)
	if err != nil {
		return nil, err
	}
	res, err := pairedLoad(ctx, name, nconns, rate, o.warmup, o.duration, calls, rand.Uint64())
	if err != nil {
		return nil, err
	}
	after, err := snapshot(ctx, target.pid(), redisPID, rdb)
	if err != nil {
		return nil, err
	}
	p := newPairedRow(res, before, after, o.duration)
	tested := res.arms[armTested]
	if mAfter, okAfter := readServerMetrics(ctx, target.httpAddr); okBefore && okAfter && tested.allCalls > 0 && decides(pairedArms[name][armTested].run) {
		p.leasedPct = 100 * (mAfter.leaseDecisions - mBefore.leaseDecisions) / float64(tested.allCalls)
	}
	return p, nil
}

// newPairedRow summarises paired run r; before and after bracket it (warm-up
// included). The Redis work is the decisions' (the no-op and the unmatched
// call make none);
// the CPU is both arms' together, so its per-call figures count every call
// of either arm.
func newPairedRow(r *pairedResult, before, after usage, window time.Duration) *pairedRow {
	tested, noop := r.arms[armTested], r.arms[armNoop]
	whole := newRow(&loadResult{name: r.name, allCalls: tested.allCalls + noop.allCalls}, before, after)
	p := &pairedRow{
		name:       r.name,
		callers:    tested.callers,
		offered:    tested.offered,
		stats:      comparePaired(r.samples[armTested], r.samples[armNoop], window),
		cpuSluice:  whole.cpuSluice,
		cpuRedis:   whole.cpuRedis,
		cpuBench:   whole.cpuBench,
		cpuPerCall: whole.cpuPerCall,
		redisPer:   whole.redisPer,
		leasedPct:  -1,
	}
	for a, res := range r.arms {
		w := newRow(res, before, after)
		w.cpuSluice, w.cpuRedis, w.cpuBench, w.cpuPerCall, w.redisPer = -1, -1, -1, -1, -1
		if !decides(pairedArms[r.name][a].run) {
			w.overPct, w.scriptsPer, w.commandsPer = -1, -1, -1
		}
		p.arms[a] = w
	}
	return p
}
