package lua

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// tokenEnv is miniredis at a pinned date with a 1-minute, 10-bucket counter.
type tokenEnv struct {
	t    *testing.T
	mr   *miniredis.Miniredis
	rdb  *redis.Client
	base time.Time
}

func newTokenEnv(t *testing.T, date time.Time) *tokenEnv {
	mr := miniredis.RunT(t)
	mr.SetTime(date)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return &tokenEnv{t: t, mr: mr, rdb: rdb, base: date}
}

func (e *tokenEnv) at(d time.Duration) { e.mr.SetTime(e.base.Add(d)) }

func tokenCounter(key string, limit, cost uint64, op Op) Counter {
	return Counter{Key: key, Bucket: 6 * time.Second, Buckets: 10, Limit: limit, Cost: cost, Op: op, Kind: 1}
}

func (e *tokenEnv) run(mode Mode, cs ...Counter) Result {
	e.t.Helper()
	res, err := NewWindow(Packed).Run(context.Background(), e.rdb, mode, cs)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *tokenEnv) used(key string) (used uint64, reserved int64) {
	e.t.Helper()
	res := e.run(Peek, tokenCounter(key, 1<<40, 0, OpCheck))
	return res.Counters[0].Used, res.Counters[0].Amount
}

var tokenDates = []time.Time{
	time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2025, 7, 3, 23, 59, 59, 0, time.UTC),
	time.Date(2025, 7, 5, 0, 0, 1, 0, time.UTC),
	time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
}

func TestTokenOps(t *testing.T) {
	for _, date := range tokenDates {
		t.Run(date.Format("2006-01-02"), func(t *testing.T) {
			e := newTokenEnv(t, date)
			// check: a cost that fits is charged.
			if r := e.run(Charge, tokenCounter("k", 100, 30, OpCheck)); !r.Allowed || r.Counters[0].Amount != 30 {
				t.Fatalf("check: %+v", r)
			}
			// reserve above the whole limit takes what remains.
			r := e.run(Charge, tokenCounter("k", 100, 150, OpReserve))
			if !r.Allowed || r.Counters[0].Amount != 70 || r.Counters[0].Used != 100 {
				t.Fatalf("oversize reserve: %+v", r.Counters[0])
			}
			if r := e.run(Charge, tokenCounter("k", 100, 150, OpReserve)); r.Allowed || r.Counters[0].Amount != 0 {
				t.Fatalf("oversize reserve on a full counter: %+v", r)
			}
			// force charges past the limit and never refuses.
			e.at(7 * time.Second)
			r = e.run(Charge, tokenCounter("k", 100, 50, OpForce), tokenCounter("other", 10, 1, OpCheck))
			if !r.Allowed || !r.Counters[0].Over || r.Counters[0].Used != 150 || r.Counters[0].Amount != 50 {
				t.Fatalf("force: %+v", r)
			}
			// refund gives back newest buckets first, never below zero.
			r = e.run(Charge, tokenCounter("k", 100, 60, OpRefund))
			if !r.Allowed || r.Counters[0].Amount != -60 || r.Counters[0].Used != 90 {
				t.Fatalf("refund: %+v", r.Counters[0])
			}
			fields, _ := e.mr.HKeys("k")
			if len(fields) != 1 {
				t.Fatalf("fields after refund %v: want the newer bucket emptied first", fields)
			}
			if r := e.run(Charge, tokenCounter("k", 100, 500, OpRefund)); r.Counters[0].Amount != -90 || r.Counters[0].Used != 0 {
				t.Fatalf("refund past zero: %+v", r.Counters[0])
			}
		})
	}
}

func TestReserveAndReport(t *testing.T) {
	for _, date := range tokenDates {
		t.Run(date.Format("2006-01-02"), func(t *testing.T) {
			e := newTokenEnv(t, date)
			ctx := context.Background()
			win, rep := NewWindow(Packed), NewReport(Packed)
			reserve := func(rec string, cost uint64) Result {
				t.Helper()
				res, err := win.Reserve(ctx, e.rdb, []Counter{tokenCounter("k", 1000, cost, OpReserve)}, rec, 2*time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			report := func(rec string, actual uint64) ReportResult {
				t.Helper()
				res, err := rep.Run(ctx, e.rdb, rec, Actual{1: actual})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}

			reserve("r1", 300)
			if used, rsv := e.used("k"); used != 300 || rsv != 300 {
				t.Fatalf("after reserve: used %d reserved %d", used, rsv)
			}
			if ttl := e.mr.TTL("r1"); ttl != 2*time.Minute {
				t.Errorf("record TTL %v, want 2m", ttl)
			}
			e.at(10 * time.Second)
			first := report("r1", 120) // less than reserved
			if first.Status != ReportReconciled || first.Counters[0].Used != 120 || first.Counters[0].Remaining != 880 {
				t.Fatalf("report less: %+v", first)
			}
			again := report("r1", 999)
			if again.Status != ReportRepeated || again.Counters[0] != first.Counters[0] {
				t.Fatalf("second report: %+v, want the first answer %+v", again, first)
			}
			if used, rsv := e.used("k"); used != 120 || rsv != 0 {
				t.Fatalf("after reports: used %d reserved %d", used, rsv)
			}

			reserve("r2", 100)
			if r := report("r2", 1200); r.Counters[0].Used != 1320 || r.Counters[0].Remaining != 0 {
				t.Fatalf("report more, past the limit: %+v", r)
			}

			reserve("r3", 50) // refused: the counter is over
			if r := report("r3", 5); r.Status != ReportNotFound {
				t.Fatalf("a refused call left a record: %+v", r)
			}

			// A reservation whose bucket left the window is not removed;
			// the actual usage is charged at report time.
			e.at(2 * time.Minute)
			reserve("r4", 200)
			e.at(2*time.Minute + 61*time.Second)
			if r := report("r4", 70); r.Counters[0].Used != 70 {
				t.Fatalf("report after the window: %+v, want only the 70 actual", r)
			}
			if r := report("missing", 1); r.Status != ReportNotFound || len(r.Counters) != 0 {
				t.Fatalf("unknown record: %+v", r)
			}
		})
	}
}

// TestRefundFromTheChargedBucket undoes a charge exactly: out of the bucket
// it went into, even after newer buckets were charged, and not at all once
// that bucket has left the window.
func TestRefundFromTheChargedBucket(t *testing.T) {
	for _, date := range tokenDates {
		t.Run(date.Format("2006-01-02"), func(t *testing.T) {
			e := newTokenEnv(t, date)
			c := Counter{Key: "k", Bucket: 6 * time.Second, Buckets: 10, Limit: 100, Cost: 30}
			first := e.run(Charge, c)
			from := ChargedBucket(first, c, first.Counters[0])
			if want := date.UnixMicro() / c.Bucket.Microseconds(); from != want {
				t.Fatalf("ChargedBucket = %d, want %d", from, want)
			}
			e.at(7 * time.Second) // the next bucket
			c.Cost = 20
			second := e.run(Charge, c)
			newer := ChargedBucket(second, c, second.Counters[0])
			r := e.run(Charge, Counter{Key: "k", Bucket: c.Bucket, Buckets: 10, Limit: 100, Cost: 30, Op: OpRefund, From: from})
			if r.Counters[0].Amount != -30 || r.Counters[0].Used != 20 {
				t.Fatalf("exact refund: %+v", r.Counters[0])
			}
			if got := e.mr.HGet("k", strconv.FormatInt(newer, 10)); newer <= from || got != "20" {
				t.Errorf("the newer bucket holds %q, want 20 untouched", got)
			}
			e.at(2 * time.Minute)
			r = e.run(Charge, Counter{Key: "k", Bucket: c.Bucket, Buckets: 10, Limit: 100, Cost: 20, Op: OpRefund, From: newer})
			if r.Counters[0].Amount != 0 {
				t.Errorf("refund from a bucket that left the window: %+v", r.Counters[0])
			}
		})
	}
}
