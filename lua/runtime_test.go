package lua

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// runtimeBackends runs f on miniredis and on a real redis-server.
func runtimeBackends(t *testing.T, f func(t *testing.T, rdb *redis.Client)) {
	t.Run("miniredis", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
		t.Cleanup(func() { _ = rdb.Close() })
		f(t, rdb)
	})
	t.Run("redis", func(t *testing.T) {
		if testing.Short() {
			t.Skip("real redis-server")
		}
		f(t, redistest.Client(t, redistest.New(t)))
	})
}

var testRuntimeKeys = RuntimeKeys{Limits: "t:{rt}:limits", Revision: "t:{rt}:revision", Audit: "t:{rt}:audit"}

func put(field, expected, body string) RuntimeWrite {
	return RuntimeWrite{Field: field, Expected: expected, Op: RuntimePut, Record: `"body":"` + body + `"}`, Audit: `"field":"` + field + `"`}
}

func TestRuntimeWrites(t *testing.T) {
	runtimeBackends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		r := NewRuntime()
		sub := rdb.Subscribe(ctx, "t:runtime")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
			t.Fatal(err)
		}

		res, err := r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{put("a", "0", "A1"), put("b", "", "B1")})
		if err != nil || !res.Written || res.Revision != 1 || res.TimeUS <= 0 {
			t.Fatalf("first write: %+v %v", res, err)
		}
		if msg, err := sub.ReceiveMessage(ctx); err != nil || msg.Payload != "1" {
			t.Fatalf("published %v %v, want revision 1", msg, err)
		}
		rec, _ := rdb.HGet(ctx, testRuntimeKeys.Limits, "a").Result()
		var got struct {
			Version   int64  `json:"version"`
			UpdatedAt int64  `json:"updated_at_us"`
			Body      string `json:"body"`
		}
		if err := json.Unmarshal([]byte(rec), &got); err != nil || got.Version != 1 || got.UpdatedAt != res.TimeUS || got.Body != "A1" {
			t.Fatalf("record %q: %+v %v", rec, got, err)
		}

		// Stale: write 2 expects version 0 but b has 1. Nothing changes.
		res, err = r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{put("a", "1", "A2"), put("b", "0", "B2")})
		if err != nil || res.Written || res.Stale != 1 || res.Current != 1 {
			t.Fatalf("stale write: %+v %v", res, err)
		}
		if rec2, _ := rdb.HGet(ctx, testRuntimeKeys.Limits, "a").Result(); rec2 != rec {
			t.Errorf("a stale call changed a: %q", rec2)
		}
		if n, _ := rdb.Get(ctx, testRuntimeKeys.Revision).Int64(); n != 1 {
			t.Errorf("revision %d after a stale call", n)
		}
		if n, _ := rdb.ZCard(ctx, testRuntimeKeys.Audit).Result(); n != 2 {
			t.Errorf("audit has %d entries after a stale call, want 2", n)
		}
		// "+" needs a record.
		res, _ = r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{{Field: "c", Expected: "+", Op: RuntimeDelete, Audit: `"x":1`}})
		if res.Written || res.Stale != 0 || res.Current != 0 {
			t.Errorf("delete of a missing record: %+v", res)
		}

		// Delete with the right version; the audit keeps old and new.
		res, err = r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{{Field: "a", Expected: "1", Op: RuntimeDelete, Audit: `"field":"a"`}})
		if err != nil || !res.Written || res.Revision != 2 {
			t.Fatalf("delete: %+v %v", res, err)
		}
		if n, _ := rdb.HExists(ctx, testRuntimeKeys.Limits, "a").Result(); n {
			t.Error("a still there after its delete")
		}
		entries, _ := rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: testRuntimeKeys.Audit, Start: 0, Stop: -1, Rev: true}).Result()
		if len(entries) != 3 {
			t.Fatalf("audit %v, want 3 entries", entries)
		}
		var newest struct {
			Revision int64           `json:"revision"`
			Field    string          `json:"field"`
			Old      json.RawMessage `json:"old"`
			New      json.RawMessage `json:"new"`
		}
		if err := json.Unmarshal([]byte(entries[0]), &newest); err != nil || newest.Revision != 2 || newest.Field != "a" ||
			string(newest.Old) != rec || string(newest.New) != "null" {
			t.Errorf("newest audit entry %q: %+v %v", entries[0], newest, err)
		}
		// A check of b's version and a delete of nothing change nothing.
		res, err = r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{{Field: "b", Expected: "1", Op: RuntimeCheck}, {Field: "a", Op: RuntimeDelete, Audit: `"x":1`}})
		if err != nil || res.Written || !res.Unchanged || res.Revision != 2 {
			t.Fatalf("check only: %+v %v", res, err)
		}
		// A check that fails stops a put.
		res, _ = r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{{Field: "b", Expected: "7", Op: RuntimeCheck}, put("e", "", "E")})
		if res.Written || res.Stale != 0 || res.Current != 1 {
			t.Errorf("failed check: %+v", res)
		}
		if n, _ := rdb.HExists(ctx, testRuntimeKeys.Limits, "e").Result(); n {
			t.Error("a put went through a failed check")
		}
		// The audit list keeps its bound: 3.
		if _, err := r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 3, []RuntimeWrite{put("d", "", "D")}); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.ZCard(ctx, testRuntimeKeys.Audit).Result(); n != 3 {
			t.Errorf("audit has %d entries, want the bound 3", n)
		}
		for _, k := range []string{testRuntimeKeys.Limits, testRuntimeKeys.Revision, testRuntimeKeys.Audit} {
			if ttl, _ := rdb.TTL(ctx, k).Result(); ttl >= 0 {
				t.Errorf("%s has a TTL %v: runtime limits are durable", k, ttl)
			}
		}
	})
}

// TestRuntimeRacingWriters checks that writers racing on one version cannot
// both win: exactly one of them writes.
func TestRuntimeRacingWriters(t *testing.T) {
	runtimeBackends(t, func(t *testing.T, rdb *redis.Client) {
		ctx := context.Background()
		r := NewRuntime()
		if _, err := r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 100, []RuntimeWrite{put("p", "0", "v0"), put("s", "0", "v0")}); err != nil {
			t.Fatal(err)
		}
		const writers = 16
		var wg sync.WaitGroup
		wins := make(chan int, writers)
		for i := range writers {
			wg.Go(func() {
				body := fmt.Sprintf("w%d", i)
				res, err := r.Run(ctx, rdb, testRuntimeKeys, "t:runtime", 100, []RuntimeWrite{put("p", "1", body), put("s", "1", body)})
				if err != nil {
					t.Error(err)
				}
				if res.Written {
					wins <- i
				}
			})
		}
		wg.Wait()
		close(wins)
		var won []int
		for i := range wins {
			won = append(won, i)
		}
		if len(won) != 1 {
			t.Fatalf("%d writers won on one version, want 1", len(won))
		}
		p, _ := rdb.HGet(ctx, testRuntimeKeys.Limits, "p").Result()
		s, _ := rdb.HGet(ctx, testRuntimeKeys.Limits, "s").Result()
		want := fmt.Sprintf(`"body":"w%d"`, won[0])
		if !strings.Contains(p, want) || !strings.Contains(s, want) {
			t.Errorf("half applied: p=%s s=%s, want both %s", p, s, want)
		}
	})
}

func TestRuntimeRunRejectsBadInput(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	r := NewRuntime()
	for _, tc := range []struct {
		max    int
		writes []RuntimeWrite
	}{{10, nil}, {0, []RuntimeWrite{put("a", "", "x")}}, {10, []RuntimeWrite{{Field: "", Op: RuntimePut}}}, {10, []RuntimeWrite{{Field: "a", Op: "x"}}}} {
		if _, err := r.Run(context.Background(), rdb, testRuntimeKeys, "c", tc.max, tc.writes); err == nil {
			t.Errorf("%+v: no error", tc)
		}
	}
	if keys := m.Keys(); len(keys) != 0 {
		t.Errorf("bad input wrote %v", keys)
	}
}
