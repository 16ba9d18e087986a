package lua

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Counter is one sliding-window counter checked (and maybe charged) by a Window call.
type Counter struct {
	Key     string
	Bucket  time.Duration // bucket width, >= 1ms, whole microseconds
	Buckets int           // n: previous buckets counted besides the current one
	Limit   uint64
	Cost    uint64
	Shadow  bool // reported, but never refuses the call
	Op      Op   // what Cost does; OpCheck when zero
	// Inclusive applies envoyproxy/ratelimit's rule that a limit is passed
	// only once used > limit: a cost-0 OpCheck admits while used <= limit
	// (not only while used < limit), and an OpForce charges only while
	// used <= limit — the call that takes the counter past its limit counts
	// whole, the calls after it nothing until the count is back at the limit.
	// Other ops ignore it.
	Inclusive bool
	// From, for OpRefund, is the bucket to give back from — the one a
	// charge went into (see ChargedBucket) — so the refund undoes exactly
	// that charge; nothing is given back once it has left the window. 0
	// gives back newest buckets first.
	From int64
	// Kind, for token counters, is the kind code written into a
	// reservation record (and read back by Report); 0 for none. A counter
	// with a Kind also reports its reserved amount in Peek mode.
	Kind uint8
	// Holder, for OpLease, names the replica the lease belongs to: 1 to
	// 32 characters of [0-9a-z], unique among the replicas sharing the
	// counters. Empty for every other op.
	Holder string
	// Ahead, for an OpLease grant (From 0), grants into the bucket after
	// the current one, against what the window starting there holds now
	// (docs/leases.md, "Leasing the next bucket"). While such units are
	// held, every check of the counter also checks that window.
	Ahead bool
}

// Op says what a counter's Cost does.
type Op uint8

const (
	// OpCheck charges Cost when the call is allowed; a Cost that does not
	// fit refuses the call (cost 0: admits while used < limit, or while
	// used <= limit when the counter is Inclusive).
	OpCheck Op = 0
	// OpReserve is OpCheck for a token reservation: a Cost above the whole
	// limit admits while used < limit and takes what remains, so an
	// oversize estimate waits for room instead of being refused forever.
	OpReserve Op = 1
	// OpForce charges Cost even past the limit and never refuses the call:
	// usage that already happened.
	OpForce Op = 2
	// OpRefund gives Cost back, newest buckets first, never below zero.
	OpRefund Op = 3
	// OpLease grants or returns a quota lease of Holder (docs/leases.md),
	// in Charge mode only; it never refuses the call, and it sees what the
	// call's earlier counters did. With From 0 it grants up to Cost units,
	// at most half of what is free (limit − used), into the current
	// bucket: CounterResult.Amount is the grant and BucketLeft the time
	// until the bucket ends. With From > 0 it returns Holder's lease in
	// bucket From, of which Holder spent Cost units: it keeps what Redis
	// holds of the lease up to Cost and gives back the rest (Amount, ≤ 0);
	// nothing once From has left the window, nothing when Redis holds no
	// such lease (it was returned already, or its grant was lost). From
	// may be the bucket after the current one (a lease granted Ahead).
	OpLease Op = 4
)

// Mode says whether a Window call charges the counters.
type Mode int

const (
	// Peek evaluates the counters and writes nothing.
	Peek Mode = 0
	// Charge evaluates the counters and, if none refuses, charges all of them.
	Charge Mode = 1
)

// CounterResult is the state of one counter after a Window call.
type CounterResult struct {
	Over       bool          // the cost did not fit (for cost 0: used >= limit; Inclusive: used > limit)
	Used       uint64        // counted in the window, after charging
	Remaining  uint64        // max(limit - used, 0)
	ResetAfter time.Duration // until everything now counted has aged out
	RetryAfter time.Duration // until the cost would fit; 0 when not Over, and for an OpForce that is not Inclusive
	// Amount is, in Charge mode, what was charged (negative: refunded); in
	// Peek mode, for a counter with a Kind, what is reserved and not yet
	// reported in the window.
	Amount int64
	// BucketLeft is, for OpLease, the time from Now until the current
	// bucket ends: a lease granted now lives in this bucket only.
	BucketLeft time.Duration
}

// Result is the answer of a Window call.
type Result struct {
	Now      time.Time // Redis TIME at the call
	Allowed  bool      // no non-shadow counter was over; in Charge mode all were charged
	Counters []CounterResult
}

// maxExact bounds limits and costs: the script computes with Lua numbers
// (doubles), exact for integers below 2^53.
const maxExact = 1<<53 - 1

// maxSpan bounds (n+1) bucket widths so that bucket arithmetic on microsecond
// timestamps stays below 2^53 for centuries.
const maxSpan = 10 * 366 * 24 * time.Hour

// Window runs window.lua. It is safe for concurrent use.
type Window struct {
	script *redis.Script
}

// NewWindow returns the wrapper of the sliding-window script that writes
// counters in layout.
func NewWindow(layout Layout) *Window {
	return &Window{script: redis.NewScript(windowSource(layout))}
}

// Load sends the script to Redis with SCRIPT LOAD so the first Run needs no
// fallback to EVAL.
func (w *Window) Load(ctx context.Context, rdb redis.Scripter) error {
	if err := w.script.Load(ctx, rdb).Err(); err != nil {
		return fmt.Errorf("load window script: %w", err)
	}
	return nil
}

// Run evaluates every counter in one script call, with the time of the Redis
// server. In Charge mode it charges every counter whose cost fits, but only if
// no non-shadow counter refuses; otherwise nothing is written.
func (w *Window) Run(ctx context.Context, rdb redis.Scripter, mode Mode, counters []Counter) (Result, error) {
	if mode != Peek && mode != Charge {
		return Result{}, refused(fmt.Errorf("window: unknown mode %d", mode))
	}
	if len(counters) == 0 {
		return Result{}, refused(errors.New("window: no counters"))
	}
	if mode == Peek {
		for i := range counters {
			if counters[i].Op == OpLease {
				return Result{}, refused(fmt.Errorf("window: counter %d: a lease needs Charge mode", i))
			}
		}
	}
	return w.run(ctx, rdb, mode, counters, "", 0)
}

// Reserve is Run in Charge mode that also writes a reservation record under
// recordKey, kept for ttl, listing every OpReserve counter with the bucket
// and amount it was charged, for Report to reconcile. Nothing is written
// when the call is refused.
func (w *Window) Reserve(ctx context.Context, rdb redis.Scripter, counters []Counter, recordKey string, ttl time.Duration) (Result, error) {
	if recordKey == "" || ttl < time.Millisecond {
		return Result{}, refused(fmt.Errorf("window: reservation needs a key and a ttl of at least 1ms, got %q %v", recordKey, ttl))
	}
	return w.run(ctx, rdb, Charge, counters, recordKey, ttl.Milliseconds())
}

func (w *Window) run(ctx context.Context, rdb redis.Scripter, mode Mode, counters []Counter, recordKey string, ttlMS int64) (Result, error) {
	nkeys := len(counters)
	if recordKey != "" {
		nkeys++
	}
	line := newEvalSha(w.script, nkeys, 4+7*len(counters))
	for i := range counters {
		c := &counters[i]
		if err := c.validate(); err != nil {
			return Result{}, refused(fmt.Errorf("window: counter %d: %w", i, err))
		}
		line = append(line, c.Key)
	}
	if recordKey != "" {
		line = append(line, recordKey)
	}
	line = append(line, 1, int(mode), ttlMS, len(counters)) // one call
	for i := range counters {
		c := &counters[i]
		kind := c.Holder
		if c.Kind != 0 {
			kind = strconv.Itoa(int(c.Kind)) // small: no allocation
		}
		line = append(line, c.Bucket.Microseconds(), c.Buckets, c.Limit, c.Cost, c.flags(), kind, c.From)
	}

	reply, err := runEvalSha(ctx, rdb, w.script, line).Result()
	if err != nil {
		return Result{}, fmt.Errorf("window script: %w", err)
	}
	calls, ok := reply.([]any)
	if !ok || len(calls) != 1 {
		return Result{}, fmt.Errorf("window script: reply is %T of %d, want an array of one call's reply", reply, len(calls))
	}
	if err, ok := calls[0].(error); ok {
		return Result{}, fmt.Errorf("window script: %w", err)
	}
	return parseWindowReply(calls[0], counters)
}

// flags packs the counter's shadow bit, op and inclusive bit into the
// script's per-counter flags: bit 0 shadow, bits 1-3 op, bit 4 inclusive.
func (c *Counter) flags() int {
	f := int(c.Op) << 1
	if c.Shadow {
		f |= 1
	}
	if c.Inclusive {
		f |= 16
	}
	if c.Ahead {
		f |= 32
	}
	return f
}

// validate checks what the script relies on.
func (c *Counter) validate() error {
	switch {
	case c.Key == "":
		return errors.New("empty key")
	case c.Bucket < time.Millisecond:
		return fmt.Errorf("bucket width %v is below 1ms", c.Bucket)
	case c.Bucket%time.Microsecond != 0:
		return fmt.Errorf("bucket width %v is not whole microseconds", c.Bucket)
	case c.Buckets < 1:
		return fmt.Errorf("buckets %d is below 1", c.Buckets)
	case time.Duration(c.Buckets) >= maxSpan/c.Bucket:
		return fmt.Errorf("window of %d buckets of %v is longer than %v", c.Buckets+1, c.Bucket, maxSpan)
	case c.Limit > maxExact:
		return fmt.Errorf("limit %d is above 2^53-1", c.Limit)
	case c.Cost > maxExact:
		return fmt.Errorf("cost %d is above 2^53-1", c.Cost)
	case c.Op > OpLease:
		return fmt.Errorf("unknown op %d", c.Op)
	case c.From < 0:
		return fmt.Errorf("refund bucket %d is negative", c.From)
	case c.Op == OpLease && (c.Kind != 0 || c.Shadow):
		return errors.New("a lease has no kind and is never shadow")
	case c.Op == OpLease && !ValidHolder(c.Holder):
		return fmt.Errorf("lease holder %q is not 1 to 32 characters of [0-9a-z]", c.Holder)
	case c.Op != OpLease && c.Holder != "":
		return fmt.Errorf("holder %q given for op %d; only a lease has one", c.Holder, c.Op)
	case c.Ahead && (c.Op != OpLease || c.From != 0):
		return errors.New("only a lease grant (From 0) is made ahead")
	}
	return nil
}

// ValidHolder reports whether h can name a lease holder in a hash field.
func ValidHolder(h string) bool {
	if len(h) == 0 || len(h) > 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// parseWindowReply checks the reply's shape: {now_us, allowed, then 6 integers per counter}.
func parseWindowReply(reply any, counters []Counter) (Result, error) {
	n := len(counters)
	vals, ok := reply.([]any)
	if !ok {
		return Result{}, fmt.Errorf("window script: reply is %T, want an array", reply)
	}
	if len(vals) != 2+6*n {
		return Result{}, fmt.Errorf("window script: reply has %d values, want %d", len(vals), 2+6*n)
	}
	signed := func(i int) (int64, error) {
		v, ok := vals[i].(int64)
		if !ok {
			return 0, fmt.Errorf("window script: reply value %d is %T, want an integer", i, vals[i])
		}
		return v, nil
	}
	ints := func(i int) (int64, error) {
		v, err := signed(i)
		if err != nil {
			return 0, err
		}
		if v < 0 {
			return 0, fmt.Errorf("window script: reply value %d is negative (%d)", i, v)
		}
		return v, nil
	}
	nowUS, err := ints(0)
	if err != nil {
		return Result{}, err
	}
	allowed, err := ints(1)
	if err != nil {
		return Result{}, err
	}
	if allowed > 1 {
		return Result{}, fmt.Errorf("window script: allowed is %d, want 0 or 1", allowed)
	}
	res := Result{
		Now:      time.UnixMicro(nowUS),
		Allowed:  allowed == 1,
		Counters: make([]CounterResult, n),
	}
	for i := range res.Counters {
		var f [6]int64
		for j := range 5 {
			if f[j], err = ints(2 + 6*i + j); err != nil {
				return Result{}, err
			}
		}
		if f[5], err = signed(2 + 6*i + 5); err != nil {
			return Result{}, err
		}
		if f[0] != 1 && f[0] != 2 {
			return Result{}, fmt.Errorf("window script: counter %d code is %d, want 1 or 2", i, f[0])
		}
		res.Counters[i] = CounterResult{
			Over:       f[0] == 2,
			Used:       uint64(f[1]),
			Remaining:  uint64(f[2]),
			ResetAfter: time.Duration(f[3]) * time.Microsecond,
			RetryAfter: time.Duration(f[4]) * time.Microsecond,
			Amount:     f[5],
		}
		if counters[i].Op == OpLease {
			res.Counters[i].RetryAfter, res.Counters[i].BucketLeft = 0, time.Duration(f[4])*time.Microsecond
		}
	}
	return res, nil
}

// SplitWindow returns the bucket width and n for a window split into about
// `buckets` buckets: width = ceil(window/buckets) rounded up to whole
// microseconds and at least 1ms; n = ceil(window/width). A window of zero or
// less gives (1ms, 1); buckets below 1 count as 1.
func SplitWindow(window time.Duration, buckets int) (width time.Duration, n int) {
	if buckets < 1 {
		buckets = 1
	}
	if window <= 0 {
		return time.Millisecond, 1
	}
	width = ceilDiv(window, time.Duration(buckets))
	width = ceilDiv(width, time.Microsecond) * time.Microsecond
	width = max(width, time.Millisecond)
	return width, int(ceilDiv(window, width))
}

// ceilDiv returns ceil(a/b) for a, b > 0.
func ceilDiv(a, b time.Duration) time.Duration {
	return (a + b - 1) / b
}

// ChargedBucket is the bucket a Charge call put counter c's amount into, for
// an exact refund (Counter.From); 0 when it charged nothing. The script
// reports ResetAfter = (k+n+1)·w − now for a charged counter, so k follows.
func ChargedBucket(res Result, c Counter, r CounterResult) int64 {
	if r.Amount <= 0 {
		return 0
	}
	w := c.Bucket.Microseconds()
	return (res.Now.UnixMicro()+r.ResetAfter.Microseconds())/w - int64(c.Buckets) - 1
}
