package lua

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/sluice-rl/sluice/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWindowSourceHeader(t *testing.T) {
	for _, want := range []string{"KEYS", "ARGV[1]", "m, the number of calls", "bucket_us", "Reply", "TIME"} {
		if !strings.Contains(windowBody, want) {
			t.Errorf("window.lua header does not mention %q", want)
		}
	}
}

func TestSplitWindow(t *testing.T) {
	for _, tc := range []struct {
		window  time.Duration
		buckets int
		width   time.Duration
		n       int
	}{
		{time.Second, 10, 100 * time.Millisecond, 10},
		{time.Minute, 60, time.Second, 60},
		{10 * time.Second, 60, 166667 * time.Microsecond, 60},
		{time.Second, 3, 333334 * time.Microsecond, 3},
		{time.Second, 1, time.Second, 1},
		{5 * time.Millisecond, 10, time.Millisecond, 5},
		{1500 * time.Microsecond, 10, time.Millisecond, 2},
		{time.Hour, 0, time.Hour, 1},
		{0, 10, time.Millisecond, 1},
		{time.Second + time.Nanosecond, 1, time.Second + time.Microsecond, 1},
	} {
		width, n := SplitWindow(tc.window, tc.buckets)
		if width != tc.width || n != tc.n {
			t.Errorf("SplitWindow(%v, %d) = %v, %d; want %v, %d", tc.window, tc.buckets, width, n, tc.width, tc.n)
		}
		if tc.window > 0 && time.Duration(n)*width < tc.window {
			t.Errorf("SplitWindow(%v, %d): n*width = %v is shorter than the window", tc.window, tc.buckets, time.Duration(n)*width)
		}
	}
}

func TestWindowRunRejectsBadInput(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	good := Counter{Key: "k", Bucket: time.Second, Buckets: 10, Limit: 5, Cost: 1}
	lease := Counter{Key: "k", Bucket: time.Second, Buckets: 10, Limit: 5, Cost: 1, Op: OpLease, Holder: "r1"}
	for _, tc := range []struct {
		name     string
		mode     Mode
		counters []Counter
		want     string
	}{
		{"no counters", Charge, nil, "no counters"},
		{"bad mode", Mode(2), []Counter{good}, "unknown mode"},
		{"empty key", Charge, []Counter{func() Counter { c := good; c.Key = ""; return c }()}, "empty key"},
		{"zero width", Charge, []Counter{func() Counter { c := good; c.Bucket = 0; return c }()}, "below 1ms"},
		{"width below 1ms", Charge, []Counter{func() Counter { c := good; c.Bucket = 999 * time.Microsecond; return c }()}, "below 1ms"},
		{"width not whole µs", Charge, []Counter{func() Counter { c := good; c.Bucket = time.Second + 1; return c }()}, "whole microseconds"},
		{"n zero", Charge, []Counter{func() Counter { c := good; c.Buckets = 0; return c }()}, "below 1"},
		{"span too long", Charge, []Counter{func() Counter { c := good; c.Bucket = 24 * time.Hour; c.Buckets = 5000; return c }()}, "longer than"},
		{"limit too big", Charge, []Counter{func() Counter { c := good; c.Limit = 1 << 60; return c }()}, "limit"},
		{"cost too big", Charge, []Counter{func() Counter { c := good; c.Cost = 1 << 60; return c }()}, "cost"},
		{"second counter bad", Peek, []Counter{good, {}}, "counter 1: empty key"},
		{"lease in peek mode", Peek, []Counter{lease}, "needs Charge mode"},
		{"lease without holder", Charge, []Counter{func() Counter { c := lease; c.Holder = ""; return c }()}, "holder"},
		{"lease holder with a colon", Charge, []Counter{func() Counter { c := lease; c.Holder = "a:b"; return c }()}, "holder"},
		{"lease holder too long", Charge, []Counter{func() Counter { c := lease; c.Holder = strings.Repeat("a", 33); return c }()}, "holder"},
		{"shadow lease", Charge, []Counter{func() Counter { c := lease; c.Shadow = true; return c }()}, "never shadow"},
		{"lease with a kind", Charge, []Counter{func() Counter { c := lease; c.Kind = 1; return c }()}, "no kind"},
		{"holder on a check", Charge, []Counter{func() Counter { c := good; c.Holder = "h"; return c }()}, "only a lease"},
		{"unknown op", Charge, []Counter{func() Counter { c := good; c.Op = 5; return c }()}, "unknown op"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWindow(Packed).Run(context.Background(), rdb, tc.mode, tc.counters)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if !errors.Is(err, ErrArgument) {
				t.Fatalf("err = %v, want it to match ErrArgument: refused before any Redis call", err)
			}
		})
	}
	if keys := m.Keys(); len(keys) != 0 {
		t.Fatalf("bad input wrote keys %v", keys)
	}
}

func TestParseWindowReply(t *testing.T) {
	ok := []any{int64(1751630400000000), int64(1), int64(1), int64(2), int64(3), int64(4), int64(0), int64(-2)}
	res, err := parseWindowReply(ok, make([]Counter, 1))
	if err != nil {
		t.Fatal(err)
	}
	want := CounterResult{Used: 2, Remaining: 3, ResetAfter: 4 * time.Microsecond, Amount: -2}
	if !res.Allowed || res.Counters[0] != want || res.Now.UnixMicro() != 1751630400000000 {
		t.Fatalf("parsed %+v", res)
	}
	with := func(i int, v any) []any {
		r := append([]any(nil), ok...)
		r[i] = v
		return r
	}
	for _, tc := range []struct {
		name  string
		reply any
		want  string
	}{
		{"not an array", "OK", "want an array"},
		{"nil", nil, "want an array"},
		{"too short", ok[:7], "has 7 values, want 8"},
		{"too long", append(append([]any(nil), ok...), int64(0)), "has 9 values"},
		{"string value", with(3, "2"), "value 3 is string"},
		{"nil value", with(0, nil), "value 0 is <nil>"},
		{"negative", with(4, int64(-1)), "negative"},
		{"bad allowed", with(1, int64(7)), "allowed is 7"},
		{"bad code", with(2, int64(3)), "code is 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWindowReply(tc.reply, make([]Counter, 1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestWindowLoadAndNoScriptFallback checks that Run works before Load (EVAL
// fallback), after Load, and after the server forgot its scripts.
func TestWindowLoadAndNoScriptFallback(t *testing.T) {
	ctx := context.Background()
	srv := redistest.New(t)
	rdb := redistest.Client(t, srv)
	win := NewWindow(Packed)
	c := []Counter{{Key: t.Name(), Bucket: time.Second, Buckets: 2, Limit: 100, Cost: 1}}
	run := func(wantUsed uint64) {
		t.Helper()
		res, err := win.Run(ctx, rdb, Charge, c)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Allowed || res.Counters[0].Used != wantUsed {
			t.Fatalf("got %+v, want allowed with used %d", res, wantUsed)
		}
	}
	run(1)
	if err := win.Load(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	run(2)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	run(3)
}

func TestWindowRunRedisErrorIsWrapped(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	m.SetError("LOADING the dataset")
	_, err := NewWindow(Packed).Run(context.Background(), rdb, Charge, []Counter{{Key: "k", Bucket: time.Second, Buckets: 1, Limit: 1, Cost: 1}})
	var rerr redis.Error
	if err == nil || !errors.As(err, &rerr) || !strings.HasPrefix(err.Error(), "window script: ") || errors.Is(err, ErrArgument) {
		t.Fatalf("err = %v (%T), want a wrapped redis.Error", err, err)
	}
	if err := NewWindow(Packed).Load(context.Background(), rdb); err == nil {
		t.Fatal("Load succeeded against a failing server")
	}
}

// TestWindowWrongTypeKey checks that a key holding another type is an error,
// not a panic or a silent pass.
func TestWindowWrongTypeKey(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	if err := m.Set("k", "a string"); err != nil {
		t.Fatal(err)
	}
	_, err := NewWindow(Packed).Run(context.Background(), rdb, Charge, []Counter{{Key: "k", Bucket: time.Second, Buckets: 1, Limit: 1, Cost: 1}})
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("err = %v, want WRONGTYPE", err)
	}
}
