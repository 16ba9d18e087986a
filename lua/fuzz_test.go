package lua

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// FuzzWindowArguments builds the window script's arguments from any
// counter fields and runs two calls on one key (the second sees what the
// first left) on miniredis, at a fuzzed date. Whatever the fields:
//   - a counter the Go wrapper refuses is an ErrArgument and reaches no
//     Redis (nothing is written);
//   - any other counter is a call the script takes: no script error, a
//     reply of the right shape;
//   - Remaining is max(limit − used, 0), and a charged check or reserve
//     never leaves the counter over its limit;
//   - every key written has a TTL.
func FuzzWindowArguments(f *testing.F) {
	mr := miniredis.RunT(f)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { _ = rdb.Close() })
	w := NewWindow(Packed)
	// bucket µs, buckets, then per call: limit, cost, op and flags (bit 0
	// shadow, bit 1 inclusive, bit 2 peek; of the first call's, bit 3 takes
	// the fields as they are rather than folded into what the wrapper
	// takes), from, kind; then a date and a holder.
	f.Add(int64(1000_000), 10, uint64(5), uint64(1), uint8(0), uint8(0), int64(0), uint8(0), uint64(3), uint64(1e9), uint8(0), uint8(0), int64(0), uint8(0), int64(1751630400), "")
	f.Add(int64(6000_000), 10, uint64(1000), uint64(2000), uint8(1), uint8(0), int64(0), uint8(1), uint64(1000), uint64(50), uint8(3), uint8(0), int64(0), uint8(1), int64(4102444800), "")
	f.Add(int64(1000), 1, uint64(5), uint64(9), uint8(2), uint8(2), int64(0), uint8(0), uint64(5), uint64(0), uint8(0), uint8(2), int64(0), uint8(0), int64(1751630400), "")
	f.Add(int64(100_000), 10, uint64(100), uint64(40), uint8(4), uint8(0), int64(0), uint8(0), uint64(100), uint64(10), uint8(4), uint8(0), int64(1), uint8(0), int64(1751630400), "r1")
	f.Add(int64(1), 0, uint64(1<<53), uint64(1<<60), uint8(9), uint8(15), int64(-1), uint8(3), uint64(0), uint64(0), uint8(3), uint8(5), int64(99), uint8(0), int64(0), "BAD HOLDER")
	f.Fuzz(func(t *testing.T, bucketUS int64, buckets int, limit1, cost1 uint64, op1, flags1 uint8, from1 int64, kind1 uint8,
		limit2, cost2 uint64, op2, flags2 uint8, from2 int64, kind2 uint8, unix int64, holder string) {
		if flags1&8 == 0 { // mostly counters the wrapper takes, so that the script runs
			bucketUS = 1000 + int64(uint64(bucketUS)%uint64(24*time.Hour/time.Microsecond))
			buckets = 1 + int(uint(buckets)%120)
			limit1, limit2 = limit1%(1<<53), limit2%(1<<53)
			cost1, cost2 = cost1%(1<<53), cost2%(1<<53)
			op1, op2 = op1%5, op2%5
			from1, from2 = max(from1, 0), max(from2, 0)
		}
		mr.FlushAll()
		mr.SetTime(time.Unix(int64(uint64(unix)%4102444800), 0).UTC()) // 1970 to 2100
		ctx := context.Background()
		for call, p := range []struct {
			limit, cost uint64
			op, flags   uint8
			from        int64
			kind        uint8
		}{{limit1, cost1, op1, flags1, from1, kind1}, {limit2, cost2, op2, flags2, from2, kind2}} {
			c := Counter{
				Key: "{fuzz}:c", Bucket: time.Duration(bucketUS) * time.Microsecond, Buckets: buckets,
				Limit: p.limit, Cost: p.cost, Op: Op(p.op), Shadow: p.flags&1 != 0, Inclusive: p.flags&2 != 0,
				From: p.from, Kind: p.kind % 4,
			}
			if c.Op == OpLease {
				c.Holder, c.Kind = holder, 0
			}
			mode := Charge
			if p.flags&4 != 0 && c.Op != OpLease {
				mode = Peek
			}
			before := len(mr.Keys())
			res, err := w.Run(ctx, rdb, mode, []Counter{c})
			if verr := c.validate(); verr != nil {
				if !errors.Is(err, ErrArgument) {
					t.Fatalf("call %d: %+v is refused by validate (%v), but Run said %v", call, c, verr, err)
				}
				if len(mr.Keys()) != before {
					t.Fatalf("call %d: a refused counter wrote %v", call, mr.Keys())
				}
				continue
			}
			if err != nil {
				t.Fatalf("call %d: %+v mode %d: %v", call, c, mode, err)
			}
			if len(res.Counters) != 1 {
				t.Fatalf("call %d: %d counter results", call, len(res.Counters))
			}
			r := res.Counters[0]
			if want := uint64(0); r.Used < c.Limit {
				want = c.Limit - r.Used
				if r.Remaining != want {
					t.Fatalf("call %d: %+v: used %d remaining %d, want %d", call, c, r.Used, r.Remaining, want)
				}
			} else if r.Remaining != 0 {
				t.Fatalf("call %d: %+v: used %d of %d, remaining %d", call, c, r.Used, c.Limit, r.Remaining)
			}
			if mode == Charge && res.Allowed && !c.Shadow && (c.Op == OpCheck && c.Cost > 0) && r.Used > c.Limit {
				t.Fatalf("call %d: a charged check left %d used of %d: %+v", call, r.Used, c.Limit, c)
			}
			for _, k := range mr.Keys() {
				if mr.TTL(k) <= 0 {
					t.Fatalf("call %d: key %s has no TTL after %+v", call, k, c)
				}
			}
		}
	})
}
