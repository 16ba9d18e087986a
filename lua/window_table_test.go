package lua

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// The table below runs on miniredis at pinned dates and on a real
// redis-server. Times are given as a bucket offset from the case's base bucket
// plus a position inside that bucket; durations as bucket boundaries, so the
// expected values are exact in both environments: reset R means
// ResetAfter == (base+R)*w - now, with now the time the script returned.

// pos is a position inside a bucket. On real Redis every position means
// "about 30ms after the bucket starts"; what matters there is the bucket.
type pos int

const (
	start pos = iota // first microsecond of the bucket
	mid              // half way
	end              // last microsecond of the bucket
)

type tableCounter struct {
	n         int
	limit     uint64
	shadow    bool
	op        Op
	inclusive bool
}

type wantCounter struct {
	over            bool
	used, remaining uint64
	reset, retry    int64 // bucket boundary relative to base; 0 means a zero duration
	// charged is true for a counter charged although over (an inclusive force
	// that takes the counter past its limit).
	charged bool
}

type tableStep struct {
	bucket int64
	at     pos
	mode   Mode
	use    []int // counters of the case used by this step; nil means all
	costs  []uint64
	allow  bool
	want   []wantCounter
	// hashes, when not nil, is the content of each counter's hash after the
	// step: counter index -> bucket relative to base -> count.
	hashes map[int]map[int64]int64
}

type tableCase struct {
	name     string
	counters []tableCounter
	steps    []tableStep
}

var windowTable = []tableCase{
	{
		name:     "admits up to the limit then refuses",
		counters: []tableCounter{{n: 3, limit: 3}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 1, remaining: 2, reset: 4}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 2, remaining: 1, reset: 4}}},
			{bucket: 0, at: end, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 3, remaining: 0, reset: 4}},
				hashes: map[int]map[int64]int64{0: {0: 3}}},
			{bucket: 1, at: start, mode: Charge, costs: []uint64{1}, allow: false, want: []wantCounter{{over: true, used: 3, remaining: 0, reset: 4, retry: 4}},
				hashes: map[int]map[int64]int64{0: {0: 3}}},
			{bucket: 1, at: mid, mode: Peek, costs: []uint64{0}, allow: false, want: []wantCounter{{over: true, used: 3, remaining: 0, reset: 4, retry: 4}}},
		},
	},
	{
		name:     "cost above one",
		counters: []tableCounter{{n: 2, limit: 10}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{4}, allow: true, want: []wantCounter{{used: 4, remaining: 6, reset: 3}}},
			{bucket: 1, at: start, mode: Charge, costs: []uint64{5}, allow: true, want: []wantCounter{{used: 9, remaining: 1, reset: 4}}},
			{bucket: 1, at: mid, mode: Charge, costs: []uint64{2}, allow: false, want: []wantCounter{{over: true, used: 9, remaining: 1, reset: 4, retry: 3}}},
			{bucket: 2, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 10, remaining: 0, reset: 5}}},
			{bucket: 2, at: mid, mode: Charge, costs: []uint64{11}, allow: false, want: []wantCounter{{over: true, used: 10, remaining: 0, reset: 5, retry: 5}}},
			// bucket 0 has aged out: its field is deleted by this charge
			{bucket: 3, at: start, mode: Charge, costs: []uint64{2}, allow: true, want: []wantCounter{{used: 8, remaining: 2, reset: 6}},
				hashes: map[int]map[int64]int64{0: {1: 5, 2: 1, 3: 2}}},
		},
	},
	{
		name:     "cost zero only checks",
		counters: []tableCounter{{n: 1, limit: 2}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{0}, allow: true, want: []wantCounter{{used: 0, remaining: 2}},
				hashes: map[int]map[int64]int64{0: {}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{2}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 2}}},
			{bucket: 0, at: end, mode: Charge, costs: []uint64{0}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 0, reset: 2, retry: 2}}},
			{bucket: 1, at: end, mode: Charge, costs: []uint64{0}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 0, reset: 2, retry: 2}}},
			// the key has expired with its last bucket
			{bucket: 2, at: start, mode: Charge, costs: []uint64{0}, allow: true, want: []wantCounter{{used: 0, remaining: 2}},
				hashes: map[int]map[int64]int64{0: {}}},
		},
	},
	{
		name:     "inclusive check admits at the limit",
		counters: []tableCounter{{n: 1, limit: 2, inclusive: true}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{2}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 2}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{0}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 2}},
				hashes: map[int]map[int64]int64{0: {0: 2}}},
			{bucket: 0, at: end, mode: Charge, costs: []uint64{1}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 0, reset: 2, retry: 2}}},
		},
	},
	{
		name:     "inclusive force counts the call that passes the limit, then nothing",
		counters: []tableCounter{{n: 2, limit: 2, op: OpForce, inclusive: true}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 1, remaining: 1, reset: 3}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{2}, allow: true, want: []wantCounter{{over: true, used: 3, remaining: 0, reset: 3, retry: 3, charged: true}},
				hashes: map[int]map[int64]int64{0: {0: 3}}},
			{bucket: 1, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{over: true, used: 3, remaining: 0, reset: 3, retry: 3}},
				hashes: map[int]map[int64]int64{0: {0: 3}}},
			{bucket: 1, at: mid, mode: Charge, costs: []uint64{0}, allow: true, want: []wantCounter{{over: true, used: 3, remaining: 0, reset: 3, retry: 3}}},
			{bucket: 3, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 1, remaining: 1, reset: 6}},
				hashes: map[int]map[int64]int64{0: {3: 1}}},
		},
	},
	{
		name:     "aging frees capacity exactly at the boundary",
		counters: []tableCounter{{n: 2, limit: 2}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 1, remaining: 1, reset: 3}}},
			{bucket: 1, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 4}}},
			{bucket: 2, at: end, mode: Charge, costs: []uint64{1}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 0, reset: 4, retry: 3}}},
			{bucket: 3, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 6}},
				hashes: map[int]map[int64]int64{0: {1: 1, 3: 1}}},
			{bucket: 3, at: end, mode: Charge, costs: []uint64{1}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 0, reset: 6, retry: 4}}},
			{bucket: 4, at: start, mode: Charge, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 2, remaining: 0, reset: 7}},
				hashes: map[int]map[int64]int64{0: {3: 1, 4: 1}}},
		},
	},
	{
		name:     "all or nothing",
		counters: []tableCounter{{n: 2, limit: 5}, {n: 2, limit: 1}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{2, 1}, allow: true,
				want:   []wantCounter{{used: 2, remaining: 3, reset: 3}, {used: 1, remaining: 0, reset: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}, 1: {0: 1}}},
			{bucket: 1, at: start, mode: Charge, costs: []uint64{2, 1}, allow: false,
				want:   []wantCounter{{used: 2, remaining: 3, reset: 3}, {over: true, used: 1, remaining: 0, reset: 3, retry: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}, 1: {0: 1}}},
			{bucket: 1, at: mid, mode: Peek, costs: []uint64{1, 0}, allow: false,
				want: []wantCounter{{used: 2, remaining: 3, reset: 3}, {over: true, used: 1, remaining: 0, reset: 3, retry: 3}}},
			{bucket: 1, at: end, mode: Peek, use: []int{0}, costs: []uint64{3}, allow: true,
				want: []wantCounter{{used: 2, remaining: 3, reset: 3}}},
			{bucket: 2, at: start, mode: Charge, costs: []uint64{3, 1}, allow: false,
				want:   []wantCounter{{used: 2, remaining: 3, reset: 3}, {over: true, used: 1, remaining: 0, reset: 3, retry: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}, 1: {0: 1}}},
			{bucket: 3, at: start, mode: Charge, costs: []uint64{3, 1}, allow: true,
				want:   []wantCounter{{used: 3, remaining: 2, reset: 6}, {used: 1, remaining: 0, reset: 6}},
				hashes: map[int]map[int64]int64{0: {3: 3}, 1: {3: 1}}},
		},
	},
	{
		name:     "shadow counter over does not refuse",
		counters: []tableCounter{{n: 2, limit: 5}, {n: 2, limit: 1, shadow: true}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Charge, costs: []uint64{1, 1}, allow: true,
				want: []wantCounter{{used: 1, remaining: 4, reset: 3}, {used: 1, remaining: 0, reset: 3}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{1, 1}, allow: true,
				want:   []wantCounter{{used: 2, remaining: 3, reset: 3}, {over: true, used: 1, remaining: 0, reset: 3, retry: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}, 1: {0: 1}}},
			{bucket: 1, at: start, mode: Peek, costs: []uint64{1, 1}, allow: true,
				want: []wantCounter{{used: 2, remaining: 3, reset: 3}, {over: true, used: 1, remaining: 0, reset: 3, retry: 3}}},
		},
	},
	{
		name:     "peek writes nothing",
		counters: []tableCounter{{n: 2, limit: 3}},
		steps: []tableStep{
			{bucket: 0, at: start, mode: Peek, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 0, remaining: 3}},
				hashes: map[int]map[int64]int64{0: {}}},
			{bucket: 0, at: mid, mode: Charge, costs: []uint64{2}, allow: true, want: []wantCounter{{used: 2, remaining: 1, reset: 3}}},
			{bucket: 1, at: start, mode: Peek, costs: []uint64{1}, allow: true, want: []wantCounter{{used: 2, remaining: 1, reset: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}}},
			{bucket: 1, at: mid, mode: Peek, costs: []uint64{2}, allow: false, want: []wantCounter{{over: true, used: 2, remaining: 1, reset: 3, retry: 3}},
				hashes: map[int]map[int64]int64{0: {0: 2}}},
		},
	},
}

// tableEnv is where a case runs: a client and a clock that can be moved (or
// waited for) to a point in a bucket.
type tableEnv struct {
	rdb  *redis.Client
	w    int64 // bucket width, µs
	base int64 // absolute index of bucket 0
	real bool
	// layouts are the layouts the steps write in, in turn: step i runs the
	// script of layouts[i % len(layouts)] (none: Packed). Alternating two is
	// a rolling change of layout: each step must read what the other wrote.
	layouts []Layout
	// goTo makes the next script call run inside absolute bucket b, at p.
	goTo func(t *testing.T, b int64, p pos)
}

// pinnedDates are the dates the miniredis table runs at: float-time
// implementations broke around 2025-07-04.
var pinnedDates = []time.Time{
	time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 7, 3, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 7, 5, 0, 0, 0, 0, time.UTC),
	time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
}

func TestWindowTableMiniredis(t *testing.T) {
	const w = int64(250_000) // 250ms buckets
	for _, date := range pinnedDates {
		for _, tc := range windowTable {
			t.Run(date.Format("2006-01-02")+"/"+tc.name, func(t *testing.T) {
				m := miniredis.RunT(t)
				rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
				t.Cleanup(func() { rdb.Close() })
				// base is not aligned to anything rounder than the bucket
				base := date.UnixMicro()/w + 7
				var now int64 // 0 until the first goTo
				env := tableEnv{rdb: rdb, w: w, base: base, goTo: func(t *testing.T, b int64, p pos) {
					at := b * w
					switch p {
					case mid:
						at += w / 2
					case end:
						at += w - 1
					}
					if now != 0 {
						if at < now {
							t.Fatalf("table steps go back in time")
						}
						m.FastForward(time.Duration(at-now) * time.Microsecond)
					}
					now = at
					m.SetTime(time.UnixMicro(at))
				}}
				runTableCase(t, env, tc)
			})
		}
	}
}

func TestWindowTableRedis(t *testing.T) {
	const w = int64(200_000) // 200ms buckets
	srv := redistest.New(t)
	rdb := redistest.Client(t, srv)
	for name, layouts := range redisLayouts {
		for _, tc := range windowTable {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				now := redisNow(t, rdb)
				env := tableEnv{rdb: rdb, w: w, base: now/w + 1, real: true, layouts: layouts, goTo: func(t *testing.T, b int64, _ pos) {
					waitForBucket(t, rdb, w, b)
				}}
				runTableCase(t, env, tc)
			})
		}
	}
}

// redisLayouts are the layouts the tables run in on redis-server: each alone,
// and the two in turn (a replica of each during a change of layout).
var redisLayouts = map[string][]Layout{
	"packed":      {Packed},
	"hash":        {Hash},
	"alternating": {Packed, Hash},
}

// layout is the layout step si writes in.
func (env tableEnv) layout(si int) Layout {
	if len(env.layouts) == 0 {
		return Packed
	}
	return env.layouts[si%len(env.layouts)]
}

// wantType is the Redis type a counter written by step si has: a packed
// counter is a string where the server has cmsgpack (not miniredis).
func (env tableEnv) wantType(si int) string {
	if env.real && env.layout(si) == Packed {
		return "string"
	}
	return "hash"
}

// redisNow returns the server's TIME in microseconds.
func redisNow(t testing.TB, rdb *redis.Client) int64 {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMicro()
}

// waitForBucket sleeps until Redis time is about 30ms into bucket b. It fails
// the test if b is already too far gone to run a step in it safely.
func waitForBucket(t *testing.T, rdb *redis.Client, w, b int64) {
	t.Helper()
	const lead, margin = 30_000, 80_000 // µs after the start; µs kept before the end
	for {
		now := redisNow(t, rdb)
		target := b*w + lead
		if now >= b*w+lead/2 && now < (b+1)*w-margin {
			return
		}
		if now >= (b+1)*w-margin {
			t.Fatalf("timing: Redis time is %dµs past the start of bucket %d, too late for a step in it (machine overloaded?)", now-b*w, b)
		}
		time.Sleep(time.Duration(target-now) * time.Microsecond)
	}
}

// runTableCase runs the steps of tc in env and checks every answer, the
// hashes, and that exactly the charged keys got a fresh TTL.
func runTableCase(t *testing.T, env tableEnv, tc tableCase) {
	ctx := context.Background()
	wins := map[Layout]*Window{Packed: NewWindow(Packed), Hash: NewWindow(Hash)}
	keys := make([]string, len(tc.counters))
	for i := range keys {
		keys[i] = fmt.Sprintf("%s/%d/c%d", t.Name(), env.base, i)
	}
	for si, st := range tc.steps {
		use := st.use
		if use == nil {
			use = make([]int, len(tc.counters))
			for i := range use {
				use[i] = i
			}
		}
		if len(st.costs) != len(use) || len(st.want) != len(use) {
			t.Fatalf("step %d: costs/want do not match the counters used", si)
		}
		counters := make([]Counter, len(use))
		for j, ci := range use {
			c := tc.counters[ci]
			counters[j] = Counter{Key: keys[ci], Bucket: time.Duration(env.w) * time.Microsecond, Buckets: c.n,
				Limit: c.limit, Cost: st.costs[j], Shadow: c.shadow, Op: c.op, Inclusive: c.inclusive}
		}

		env.goTo(t, env.base+st.bucket, st.at)
		ran := time.Now()
		before := make([]keyState, len(keys))
		for i, k := range keys {
			before[i] = readKey(t, env.rdb, k)
		}
		res, err := wins[env.layout(si)].Run(ctx, env.rdb, st.mode, counters)
		if err != nil {
			t.Fatalf("step %d: %v", si, err)
		}
		after := make([]keyState, len(keys))
		for i, k := range keys {
			after[i] = readKey(t, env.rdb, k)
		}
		// at most what a TTL read after the call can have lost since the one
		// before it, or since the script set it (a loaded machine: 170 ms)
		lag := time.Since(ran).Milliseconds() + 2 // + whole-ms rounding of PTTL and of the expiry

		now := res.Now.UnixMicro()
		if got := now/env.w - env.base; got != st.bucket {
			t.Fatalf("step %d: timing: ran in bucket %d, want %d (machine overloaded?)", si, got, st.bucket)
		}
		label := fmt.Sprintf("step %d (bucket %d, mode %d)", si, st.bucket, st.mode)
		if res.Allowed != st.allow {
			t.Errorf("%s: Allowed = %v, want %v", label, res.Allowed, st.allow)
		}
		if len(res.Counters) != len(use) {
			t.Fatalf("%s: %d counter results, want %d", label, len(res.Counters), len(use))
		}
		boundary := func(r int64) time.Duration {
			if r == 0 {
				return 0
			}
			return time.Duration((env.base+r)*env.w-now) * time.Microsecond
		}
		charged := map[int]bool{}
		for j, ci := range use {
			got, want := res.Counters[j], st.want[j]
			charged[ci] = st.mode == Charge && res.Allowed && (!want.over || want.charged) && st.costs[j] > 0
			exp := CounterResult{Over: want.over, Used: want.used, Remaining: want.remaining,
				ResetAfter: boundary(want.reset), RetryAfter: boundary(want.retry)}
			if charged[ci] {
				exp.Amount = int64(st.costs[j])
			}
			if got != exp {
				t.Errorf("%s counter %d:\n got %+v\nwant %+v", label, ci, got, exp)
			}
		}

		for ci := range keys {
			if charged[ci] {
				// TTL until the current bucket ages out, in whole ms rounded up
				c := tc.counters[ci]
				wantTTL := ((now/env.w+int64(c.n)+1)*env.w - now + 999) / 1000
				got := after[ci].pttl
				if got > wantTTL || (!env.real && got != wantTTL) || got < wantTTL-lag {
					t.Errorf("%s counter %d: PTTL = %dms, want %dms", label, ci, got, wantTTL)
				}
				if want := env.wantType(si); after[ci].kind != want {
					t.Errorf("%s counter %d: written as a %s, want a %s (layout %s)", label, ci, after[ci].kind, want, env.layout(si))
				}
				continue
			}
			// not charged: nothing written
			if !maps.Equal(before[ci].hash, after[ci].hash) {
				t.Errorf("%s counter %d: hash changed without a charge: %v -> %v", label, ci, before[ci].hash, after[ci].hash)
			}
			b, a := before[ci].pttl, after[ci].pttl
			if (!env.real && a != b) || (env.real && (a > b || (b >= 0) != (a >= 0) || a < b-lag)) {
				t.Errorf("%s counter %d: PTTL changed without a charge: %d -> %d", label, ci, b, a)
			}
		}

		for ci, want := range st.hashes {
			got := map[int64]int64{}
			for f, v := range after[ci].hash {
				b, err1 := strconv.ParseInt(f, 10, 64)
				n, err2 := strconv.ParseInt(v, 10, 64)
				if err1 != nil || err2 != nil {
					t.Fatalf("%s counter %d: bad hash field %q=%q", label, ci, f, v)
				}
				got[b-env.base] = n
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s counter %d: hash (bucket relative to base -> count) = %v, want %v", label, ci, got, want)
			}
		}
	}
}

type keyState struct {
	// hash is the counter's fields in its hash layout's names: "<bucket>"
	// and "<bucket>:<holder>" = count, whichever layout holds it
	hash map[string]string
	kind string // its Redis type: "hash", "string" (packed) or "none"
	pttl int64  // ms; -2 missing, -1 no TTL
}

func readKey(t *testing.T, rdb *redis.Client, key string) keyState {
	t.Helper()
	ctx := context.Background()
	h, kind, err := redistest.CounterFields(ctx, rdb, key)
	if err != nil {
		t.Fatal(err)
	}
	// PTTL through Do: go-redis maps -1/-2 to negative durations in a
	// version-dependent way.
	pttl, err := rdb.Do(ctx, "PTTL", key).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return keyState{hash: h, kind: kind, pttl: pttl}
}
