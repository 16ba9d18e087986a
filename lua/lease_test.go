package lua

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// The lease table runs op 4 (OpLease) step by step on miniredis at the pinned
// dates and on a real redis-server, like the window table: grants, the
// half-of-free cap, records counted as usage, exact and idempotent returns,
// returns of lost grants and of buckets that left the window.

// leaseOp is one counter of a lease-table step, on the case's only key.
type leaseOp struct {
	op     Op
	holder string
	cost   uint64
	ret    bool  // a return (From > 0) instead of a grant
	ahead  bool  // a grant into the bucket after the current one
	from   int64 // for a return: the lease's bucket, relative to base
	// want, per counter:
	amount          int64
	used, remaining uint64
	over            bool
}

type leaseStep struct {
	bucket int64
	at     pos
	ops    []leaseOp
	allow  bool
	// hash is the counter after the step: field (bucket relative to base,
	// then ":holder" for a record) -> count.
	hash map[string]int64
	// expired: on a real Redis the key may have expired by this step (its
	// TTL ends when its newest bucket leaves the window); miniredis keeps it.
	expired bool
}

const leaseLimit = 100

var leaseTable = []struct {
	name  string
	n     int
	steps []leaseStep
}{
	{
		name: "grant, spend locally, return exactly, return again",
		n:    3,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 30, amount: 30, used: 30, remaining: 70}},
				hash: map[string]int64{"0:r1": 30}},
			// the leased units count for everybody else
			{bucket: 0, at: mid, allow: false,
				ops:  []leaseOp{{op: OpCheck, cost: 71, over: true, used: 30, remaining: 70}},
				hash: map[string]int64{"0:r1": 30}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 70, amount: 70, used: 100, remaining: 0}},
				hash: map[string]int64{"0": 70, "0:r1": 30}},
			// r1 spent 12 of its 30: 12 stay counted (in bucket 0 itself), 18 go back
			{bucket: 1, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 12, ret: true, from: 0, amount: -18, used: 82, remaining: 18}},
				hash: map[string]int64{"0": 82}},
			// a second return of the same lease finds no record: nothing changes
			{bucket: 1, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 12, ret: true, from: 0, amount: 0, used: 82, remaining: 18}},
				hash: map[string]int64{"0": 82}},
		},
	},
	{
		name: "a grant is at most half of what is free",
		n:    2,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "a", cost: 1000, amount: 50, used: 50, remaining: 50}},
				hash: map[string]int64{"0:a": 50}},
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "b", cost: 1000, amount: 25, used: 75, remaining: 25}},
				hash: map[string]int64{"0:a": 50, "0:b": 25}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "a", cost: 5, amount: 5, used: 80, remaining: 20}},
				hash: map[string]int64{"0:a": 55, "0:b": 25}},
			{bucket: 0, at: end, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 19, amount: 19, used: 99, remaining: 1}},
				hash: map[string]int64{"0": 19, "0:a": 55, "0:b": 25}},
			// one unit free: never leased
			{bucket: 0, at: end, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "b", cost: 1, amount: 0, used: 99, remaining: 1}},
				hash: map[string]int64{"0": 19, "0:a": 55, "0:b": 25}},
		},
	},
	{
		name: "return and next grant in one call: the grant sees the return",
		n:    3,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 50, amount: 50, used: 50, remaining: 50}},
				hash: map[string]int64{"0:r1": 50}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 30, amount: 30, used: 80, remaining: 20}},
				hash: map[string]int64{"0": 30, "0:r1": 50}},
			// spent 10: 40 come back, so 60 are free and the grant gets 30
			{bucket: 1, at: start, allow: true,
				ops: []leaseOp{
					{op: OpLease, holder: "r1", cost: 10, ret: true, from: 0, amount: -40, used: 40, remaining: 60},
					{op: OpLease, holder: "r1", cost: 45, amount: 30, used: 70, remaining: 30},
				},
				hash: map[string]int64{"0": 40, "1:r1": 30}},
		},
	},
	{
		name: "a lost grant gives nothing back; a partly lost one only what survived",
		n:    3,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 40, amount: 40, used: 40, remaining: 60}},
				hash: map[string]int64{"0": 40}},
			// r9 returns a lease of bucket 0 that Redis never saw: others' units stay
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r9", cost: 3, ret: true, from: 0, amount: 0, used: 40, remaining: 60}},
				hash: map[string]int64{"0": 40}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r9", cost: 20, amount: 20, used: 60, remaining: 40}},
				hash: map[string]int64{"0": 40, "0:r9": 20}},
			// r9 believes it got 20 + 15 (the second grant was lost) and spent 25:
			// Redis keeps its 20, gives back nothing
			{bucket: 1, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r9", cost: 25, ret: true, from: 0, amount: 0, used: 60, remaining: 40}},
				hash: map[string]int64{"0": 60}},
		},
	},
	{
		name: "a lease whose bucket left the window needs no return; the next charge drops its record",
		n:    2,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 10, amount: 10, used: 10, remaining: 90}},
				hash: map[string]int64{"0:r1": 10}},
			{bucket: 2, at: end, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 0, used: 10, remaining: 90}},
				hash: map[string]int64{"0:r1": 10}},
			{bucket: 3, at: start, allow: true, expired: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 4, ret: true, from: 0, amount: 0, used: 0, remaining: 100}},
				hash: map[string]int64{"0:r1": 10}},
			{bucket: 3, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 1, amount: 1, used: 1, remaining: 99}},
				hash: map[string]int64{"3": 1}},
		},
	},
	{
		name: "a refund newest first takes from the bucket's own field before a lease",
		n:    2,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 30, amount: 30, used: 30, remaining: 70}},
				hash: map[string]int64{"0:r1": 30}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 20, amount: 20, used: 50, remaining: 50}},
				hash: map[string]int64{"0": 20, "0:r1": 30}},
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpRefund, cost: 25, amount: -25, used: 25, remaining: 75}},
				hash: map[string]int64{"0:r1": 25}},
			// r1 spent 10 of the 30 it got: Redis keeps 10 of the 25 left
			{bucket: 1, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 10, ret: true, from: 0, amount: -15, used: 10, remaining: 90}},
				hash: map[string]int64{"0": 10}},
		},
	},
	{
		// Units leased ahead into bucket 4 count in the window 1..4 that
		// starts when bucket 3 ends; a charge into bucket 3 counts there too,
		// so it must fit both windows (docs/leases.md, "Leasing the next bucket").
		name: "a grant ahead counts in the next window: checks see both windows",
		n:    3,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 10, amount: 10, used: 10, remaining: 90}},
				hash: map[string]int64{"0": 10}},
			// the next window (1..4) holds nothing yet: half of 100
			{bucket: 3, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 100, ahead: true, amount: 50, used: 50, remaining: 50}},
				hash: map[string]int64{"0": 10, "4:r1": 50}},
			{bucket: 3, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 45, amount: 45, used: 95, remaining: 5}},
				hash: map[string]int64{"0": 10, "3": 45, "4:r1": 50}},
			// bucket 3's own window holds 55, but 10 more would put 105 in 1..4
			{bucket: 3, at: end, allow: false,
				ops:  []leaseOp{{op: OpCheck, cost: 10, over: true, used: 95, remaining: 5}},
				hash: map[string]int64{"0": 10, "3": 45, "4:r1": 50}},
			{bucket: 3, at: end, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 0, used: 95, remaining: 5}},
				hash: map[string]int64{"0": 10, "3": 45, "4:r1": 50}},
			// in bucket 4, r1 spent 30: Redis keeps 30 in bucket 4, 20 come back
			{bucket: 4, at: start, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 30, ret: true, from: 4, amount: -20, used: 75, remaining: 25}},
				hash: map[string]int64{"0": 10, "3": 45, "4": 30}},
			{bucket: 4, at: mid, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 25, amount: 25, used: 100, remaining: 0}},
				hash: map[string]int64{"3": 45, "4": 55}},
		},
	},
	{
		name: "a lease ahead returned before its bucket begins gives back all it was not spent",
		n:    2,
		steps: []leaseStep{
			{bucket: 0, at: mid, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 20, ahead: true, amount: 20, used: 20, remaining: 80}},
				hash: map[string]int64{"1:r1": 20}},
			// bucket 0's window is empty, but 85 would put 105 in -1..1
			{bucket: 0, at: mid, allow: false,
				ops:  []leaseOp{{op: OpCheck, cost: 85, over: true, used: 20, remaining: 80}},
				hash: map[string]int64{"1:r1": 20}},
			{bucket: 0, at: end, allow: true,
				ops:  []leaseOp{{op: OpLease, holder: "r1", cost: 0, ret: true, from: 1, amount: -20, used: 0, remaining: 100}},
				hash: map[string]int64{}},
			{bucket: 0, at: end, allow: true,
				ops:  []leaseOp{{op: OpCheck, cost: 85, amount: 85, used: 85, remaining: 15}},
				hash: map[string]int64{"0": 85}},
		},
	},
	{
		name: "a refused call grants nothing",
		n:    2,
		steps: []leaseStep{
			{bucket: 0, at: start, allow: false,
				ops: []leaseOp{
					{op: OpCheck, cost: 101, over: true, used: 0, remaining: 100},
					{op: OpLease, holder: "r1", cost: 10, used: 0, remaining: 100},
				},
				hash: map[string]int64{}},
		},
	},
}

func TestLeaseTableMiniredis(t *testing.T) {
	const w = int64(250_000)
	for _, date := range pinnedDates {
		for _, tc := range leaseTable {
			t.Run(date.Format("2006-01-02")+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				m := miniredis.RunT(t)
				rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
				t.Cleanup(func() { rdb.Close() })
				base := date.UnixMicro()/w + 5
				env := tableEnv{rdb: rdb, w: w, base: base, goTo: func(t *testing.T, b int64, p pos) {
					at := b * w
					switch p {
					case mid:
						at += w / 2
					case end:
						at += w - 1
					}
					m.SetTime(time.UnixMicro(at))
				}}
				runLeaseCase(t, env, tc.n, tc.steps)
			})
		}
	}
}

func TestLeaseTableRedis(t *testing.T) {
	const w = int64(200_000)
	srv := redistest.New(t)
	rdb := redistest.Client(t, srv)
	for name, layouts := range redisLayouts {
		for _, tc := range leaseTable {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				env := tableEnv{rdb: rdb, w: w, base: redisNow(t, rdb)/w + 1, real: true, layouts: layouts, goTo: func(t *testing.T, b int64, _ pos) {
					waitForBucket(t, rdb, w, b)
				}}
				runLeaseCase(t, env, tc.n, tc.steps)
			})
		}
	}
}

func runLeaseCase(t *testing.T, env tableEnv, n int, steps []leaseStep) {
	ctx := context.Background()
	wins := map[Layout]*Window{Packed: NewWindow(Packed), Hash: NewWindow(Hash)}
	key := fmt.Sprintf("%s/%d", t.Name(), env.base)
	var prevHash map[string]int64
	for si, st := range steps {
		counters := make([]Counter, len(st.ops))
		for j, o := range st.ops {
			c := Counter{Key: key, Bucket: time.Duration(env.w) * time.Microsecond, Buckets: n,
				Limit: leaseLimit, Cost: o.cost, Op: o.op, Holder: o.holder}
			if o.ret {
				c.From = env.base + o.from
			}
			c.Ahead = o.ahead
			counters[j] = c
		}
		env.goTo(t, env.base+st.bucket, st.at)
		res, err := wins[env.layout(si)].Run(ctx, env.rdb, Charge, counters)
		if err != nil {
			t.Fatalf("step %d: %v", si, err)
		}
		now := res.Now.UnixMicro()
		if got := now/env.w - env.base; got != st.bucket {
			t.Fatalf("step %d: timing: ran in bucket %d, want %d (machine overloaded?)", si, got, st.bucket)
		}
		if res.Allowed != st.allow {
			t.Errorf("step %d: Allowed = %v, want %v", si, res.Allowed, st.allow)
		}
		for j, o := range st.ops {
			got := res.Counters[j]
			if got.Amount != o.amount || got.Used != o.used || got.Remaining != o.remaining || got.Over != o.over {
				t.Errorf("step %d counter %d: got amount %d used %d remaining %d over %v; want %d %d %d %v",
					si, j, got.Amount, got.Used, got.Remaining, got.Over, o.amount, o.used, o.remaining, o.over)
			}
			if o.op != OpLease {
				continue
			}
			if want := time.Duration((now/env.w+1)*env.w-now) * time.Microsecond; got.BucketLeft != want || got.RetryAfter != 0 {
				t.Errorf("step %d counter %d: BucketLeft %v RetryAfter %v, want %v and 0", si, j, got.BucketLeft, got.RetryAfter, want)
			}
			if got.Amount > 0 {
				want := now / env.w
				if o.ahead {
					want++
				}
				if b := ChargedBucket(res, counters[j], got); b != want {
					t.Errorf("step %d counter %d: ChargedBucket = %d, want the grant's bucket %d", si, j, b, want)
				}
			}
		}
		after := readKey(t, env.rdb, key)
		gotHash := map[string]int64{}
		for f, v := range after.hash {
			num, holder, _ := strings.Cut(f, ":")
			b, err1 := strconv.ParseInt(num, 10, 64)
			c, err2 := strconv.ParseInt(v, 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("step %d: bad hash field %q=%q", si, f, v)
			}
			name := strconv.FormatInt(b-env.base, 10)
			if holder != "" {
				name += ":" + holder
			}
			gotHash[name] = c
		}
		if !maps.Equal(gotHash, prevHash) && after.kind != "none" && after.kind != env.wantType(si) {
			t.Errorf("step %d: written as a %s, want a %s (layout %s)", si, after.kind, env.wantType(si), env.layout(si))
		}
		prevHash = gotHash
		if st.expired && env.real && len(gotHash) == 0 {
			continue
		}
		if !maps.Equal(gotHash, st.hash) {
			t.Errorf("step %d: hash = %v, want %v", si, gotHash, st.hash)
		}
		if len(st.hash) > 0 && after.pttl < 0 {
			t.Errorf("step %d: the counter has no expiry (PTTL %d)", si, after.pttl)
		}
	}
}
