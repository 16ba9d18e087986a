package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/lua"
)

// TestMergedWindowCalls sends concurrent window-script calls through a
// Batcher with lua.Merger, on a real redis-server, miniredis and a
// Redis Cluster: every counter admits exactly its limit, a call on a key of
// another type fails alone, calls are merged (fewer script calls than
// decisions), and after SCRIPT FLUSH the calls fall back to EVAL and go on.
func TestMergedWindowCalls(t *testing.T) {
	// countScripts: the server reports INFO commandstats (miniredis does not).
	run := func(t *testing.T, url string, countScripts bool) {
		s := openStore(t, url, Config{Batch: BatchConfig{Mergers: []Merger{lua.NewMerger()}}})
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		win := lua.NewWindow(lua.Packed)
		if err := win.Load(ctx, s.Scripter); err != nil {
			t.Fatal(err)
		}
		bad := testKey(t, "string")
		if err := s.Client.Set(ctx, bad, "x", 0).Err(); err != nil {
			t.Fatal(err)
		}
		before := 0
		if countScripts {
			before = scriptCalls(t, s)
		}
		decisions := hammerWindow(t, s, win, "a", bad)
		if countScripts {
			if calls := scriptCalls(t, s) - before; calls >= decisions {
				t.Errorf("%d script calls for %d decisions: nothing was merged", calls, decisions)
			}
		}
		if err := s.Client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		hammerWindow(t, s, win, "b", bad)
	}
	t.Run("redis", func(t *testing.T) { run(t, redistest.New(t).URL(), true) })
	t.Run("miniredis", func(t *testing.T) { run(t, "redis://"+miniredis.RunT(t).Addr(), false) })
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a 3-node Redis Cluster")
		}
		run(t, redistest.NewCluster(t, 3).URL(), false)
	})
}

// hammerWindow has 48 callers make 30 charges each on 4 counters (each in
// a slot of its own) with a limit of 100 per hour, plus one caller on bad, a
// key of another type; it checks that each counter admitted exactly 100 and
// that every call on bad failed with WRONGTYPE. It returns the decisions made.
func hammerWindow(t *testing.T, s *Store, win *lua.Window, round, bad string) int {
	t.Helper()
	const (
		callers, calls, counters, limit = 48, 30, 4, 100
	)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var admitted [counters]atomic.Int64
	errs := make(chan error, callers+1)
	var wg sync.WaitGroup
	for g := range callers {
		k := g % counters
		key := fmt.Sprintf("{%s:%s%d}", t.Name(), round, k) // a slot of its own, mostly
		c := []lua.Counter{{Key: key, Bucket: time.Hour, Buckets: 1, Limit: limit, Cost: 1}}
		wg.Go(func() {
			for range calls {
				res, err := win.Run(ctx, s.Scripter, lua.Charge, c)
				if err != nil {
					errs <- err
					return
				}
				if res.Allowed {
					admitted[k].Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for range calls {
			_, err := win.Run(ctx, s.Scripter, lua.Charge, []lua.Counter{{Key: bad, Bucket: time.Hour, Buckets: 1, Limit: 1, Cost: 1}})
			if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
				errs <- fmt.Errorf("call on a string key: err = %v, want WRONGTYPE", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range admitted {
		if got := admitted[k].Load(); got != limit {
			t.Errorf("round %s counter %d admitted %d, want exactly %d", round, k, got, limit)
		}
	}
	return callers*calls + calls
}

// scriptCalls is the number of EVAL and EVALSHA calls a single node has run.
func scriptCalls(t *testing.T, s *Store) int {
	t.Helper()
	info, err := s.Client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(info) {
		for _, name := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
			if rest, ok := strings.CutPrefix(line, name); ok {
				var c int
				if _, err := fmt.Sscanf(rest, "%d", &c); err == nil {
					n += c
				}
			}
		}
	}
	return n
}

var _ Merger = (*lua.Merger)(nil)
