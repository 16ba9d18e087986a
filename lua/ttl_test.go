package lua

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// Every key the scripts write must carry a TTL, on every path: a key without
// one lives forever, and under maxmemory-policy volatile-* Redis can never
// evict it. These tests run random sequences of every op — check, reserve
// (with and without a record), force, refund (newest first and from one
// bucket), peek, report (of known, repeated and unknown reservations, with
// usage and with none) — alone and merged into batches, with time passing so
// that buckets, counters and records expire, and after every step scan every
// key for its TTL, on miniredis and on a real redis-server.

// ttlEnv is a Redis for the sequence and how time passes on it.
type ttlEnv struct {
	rdb *redis.Client
	// pass lets about d pass on the server's clock; now is that clock.
	pass func(d time.Duration)
	now  func() time.Time
}

// TestEveryKeyHasATTLMiniredis runs the sequences on miniredis, whose clock
// the test moves (TIME and expiries together).
func TestEveryKeyHasATTLMiniredis(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			mr := miniredis.RunT(t)
			now := time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC).Add(time.Duration(seed) * time.Hour)
			mr.SetTime(now)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			env := ttlEnv{rdb: rdb, pass: func(d time.Duration) {
				now = now.Add(d)
				mr.SetTime(now)
				mr.FastForward(d)
			}, now: func() time.Time { return now }}
			runTTLSequence(t, env, rand.New(rand.NewPCG(seed, 9)), 200)
		})
	}
}

// TestEveryKeyHasATTLRedis runs the sequences on a real redis-server, whose
// clock runs: the windows are milliseconds long, so that they expire.
func TestEveryKeyHasATTLRedis(t *testing.T) {
	srv := redistest.New(t)
	rdb := redistest.Client(t, srv)
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			if err := rdb.FlushDB(context.Background()).Err(); err != nil { // the test's own server
				t.Fatal(err)
			}
			env := ttlEnv{rdb: rdb, pass: time.Sleep, now: time.Now}
			runTTLSequence(t, env, rand.New(rand.NewPCG(seed, 11)), 300)
		})
	}
}

// TestReportAfterAnOverRefundLeavesATTL is the sequence: reserve on
// a token limit, refund more than was used (the counter key is deleted),
// report usage 0.
func TestReportAfterAnOverRefundLeavesATTL(t *testing.T) {
	for name, env := range map[string]func(t *testing.T) *redis.Client{
		"miniredis": func(t *testing.T) *redis.Client {
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
			t.Cleanup(func() { _ = rdb.Close() })
			return rdb
		},
		"redis": func(t *testing.T) *redis.Client { return redistest.Client(t, redistest.New(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			rdb := env(t)
			ctx := context.Background()
			win, rep := NewWindow(Packed), NewReport(Packed)
			tok := Counter{Key: "{t}tokens", Bucket: time.Second, Buckets: 10, Limit: 1000, Cost: 600, Op: OpReserve, Kind: 1}
			if _, err := win.Reserve(ctx, rdb, []Counter{tok}, "{t}rec", time.Minute); err != nil {
				t.Fatal(err)
			}
			back := tok
			back.Op, back.Cost, back.Kind = OpRefund, 1_000_000_000, 0
			if _, err := win.Run(ctx, rdb, Charge, []Counter{back}); err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Run(ctx, rdb, "{t}rec", Actual{}); err != nil {
				t.Fatal(err)
			}
			if problems := keysWithoutTTL(t, rdb); len(problems) > 0 {
				t.Errorf("keys without a TTL: %v", problems)
			}
		})
	}
}

// runTTLSequence runs steps random steps on env, checking every key's TTL
// after each.
func runTTLSequence(t *testing.T, env ttlEnv, rng *rand.Rand, steps int) {
	t.Helper()
	ctx := context.Background()
	win, rep := NewWindow(Packed), NewReport(Packed)
	if err := errors.Join(win.Load(ctx, env.rdb), rep.Load(ctx, env.rdb)); err != nil { // merged calls need EVALSHA to work
		t.Fatal(err)
	}
	const bucket = 2 * time.Millisecond // windows of 2 to 12 ms: they expire as the test runs
	var records []string
	counter := func() Counter {
		k := rng.IntN(3) // few keys, so that ops meet on them
		c := Counter{
			Key: fmt.Sprintf("{t}c%d", k), Bucket: bucket * time.Duration(1+k%2), Buckets: 1 + k,
			Limit: uint64(1 + rng.IntN(20)), Cost: uint64(rng.IntN(8)),
			Shadow: rng.IntN(8) == 0, Op: Op(rng.IntN(4)),
		}
		switch c.Op {
		case OpReserve:
			c.Kind = uint8(1 + rng.IntN(3))
		case OpRefund:
			if rng.IntN(2) == 0 {
				c.Cost = uint64(rng.IntN(1_000_000_000)) // more than was ever used
			}
			if rng.IntN(3) == 0 { // from one bucket: the current one, or one gone
				c.From = env.now().UnixMicro()/c.Bucket.Microseconds() - int64(rng.IntN(3))
			}
		}
		return c
	}
	counters := func() []Counter {
		cs := make([]Counter, 1+rng.IntN(3))
		for i := range cs {
			cs[i] = counter()
		}
		return cs
	}
	// call draws one script call's arguments (and remembers its record) and
	// returns the call, to make through a Scripter.
	call := func(kind int) func(sc redis.Scripter) error {
		switch kind {
		case 0: // charge: check, force, refund, reserve without a record
			cs := counters()
			return func(sc redis.Scripter) error { _, err := win.Run(ctx, sc, Charge, cs); return err }
		case 1:
			cs := counters()
			return func(sc redis.Scripter) error { _, err := win.Run(ctx, sc, Peek, cs); return err }
		case 2: // reserve with a record
			cs := counters()
			for i := range cs {
				cs[i].Op, cs[i].Kind, cs[i].From = OpReserve, uint8(1+rng.IntN(3)), 0
			}
			key := fmt.Sprintf("{t}rec%d", len(records))
			records = append(records, key)
			ttl := time.Duration(1+rng.IntN(20)) * time.Millisecond
			return func(sc redis.Scripter) error { _, err := win.Reserve(ctx, sc, cs, key, ttl); return err }
		default: // report: a known record (maybe again), or an unknown one
			key := "{t}rec-none"
			if len(records) > 0 && rng.IntN(6) > 0 { // mostly a recent one, still in its window
				key = records[len(records)-1-rng.IntN(min(len(records), 3))]
			}
			actual := Actual{}
			if rng.IntN(2) > 0 {
				actual = Actual{0, uint64(rng.IntN(30)), uint64(rng.IntN(30)), uint64(rng.IntN(30))}
			}
			return func(sc redis.Scripter) error { _, err := rep.Run(ctx, sc, key, actual); return err }
		}
	}
	for step := range steps {
		switch r := rng.IntN(10); {
		case r < 6:
			if err := call(rng.IntN(4))(env.rdb); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		case r < 8: // a merged batch of one script's calls
			kinds := []int{0, 1, 2}
			if r == 7 {
				kinds = []int{3}
			}
			fns := make([]func(redis.Scripter), 2+rng.IntN(4))
			errs := make([]error, len(fns))
			for i := range fns {
				c := call(kinds[rng.IntN(len(kinds))])
				fns[i] = func(sc redis.Scripter) { errs[i] = c(sc) }
			}
			runMergedFuncs(t, env.rdb, fns)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("step %d, merged call %d: %v", step, i, err)
				}
			}
		default:
			env.pass(time.Duration(rng.IntN(15)) * time.Millisecond)
		}
		if problems := keysWithoutTTL(t, env.rdb); len(problems) > 0 {
			t.Fatalf("after step %d: keys without a TTL: %v", step, problems)
		}
	}
}

// keysWithoutTTL scans every key and lists those without an expiry.
func keysWithoutTTL(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		ttl, err := rdb.PTTL(ctx, iter.Val()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -1 { // -2: gone since the scan saw it
			out = append(out, fmt.Sprintf("%s %v", iter.Val(), readKey(t, rdb, iter.Val()).hash))
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
