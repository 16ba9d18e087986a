package lua

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// TestWindowConcurrentNeverOver hammers one counter from 32 goroutines on a
// real redis-server and checks, with the script's own clock, that no closed
// interval of length W holds more than L of admitted cost.
func TestWindowConcurrentNeverOver(t *testing.T) {
	const (
		limit   = 20
		workers = 32
		runFor  = 3 * time.Second
	)
	window := time.Second
	width, n := SplitWindow(window, 10)
	srv := redistest.New(t)
	rdb := redistest.Client(t, srv)
	win := NewWindow(Packed)
	ctx := context.Background()
	if err := win.Load(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	key := t.Name()

	var (
		mu       sync.Mutex
		events   []admitted
		calls    int
		firstErr error
	)
	stop := time.Now().Add(runFor)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			c := []Counter{{Key: key, Bucket: width, Buckets: n, Limit: limit, Cost: uint64(1 + g%2)}}
			var mine []admitted
			var count int
			for time.Now().Before(stop) {
				res, err := win.Run(ctx, rdb, Charge, c)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				count++
				if res.Allowed {
					mine = append(mine, admitted{res.Now.UnixMicro(), int64(c[0].Cost)})
				}
			}
			mu.Lock()
			events = append(events, mine...)
			calls += count
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })
	var total int64
	for _, e := range events {
		total += e.cost
	}
	got := maxInWindow(events, window.Microseconds())
	t.Logf("%d calls, %d admitted (cost %d), at most %d in any %v (limit %d)", calls, len(events), total, got, window, limit)
	if got > limit {
		t.Fatalf("%d admitted in one interval of %v, limit %d", got, window, limit)
	}
	if got < limit/2 {
		t.Errorf("only %d admitted in the busiest window, want close to %d", got, limit)
	}
}
