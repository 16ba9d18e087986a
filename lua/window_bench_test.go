package lua

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// BenchmarkWindow measures one charging call against a real redis-server,
// with one and with three counters (minute windows of 60 buckets, limits
// high enough that every call is admitted and writes), with 16 callers per
// GOMAXPROCS so it reports throughput rather than round-trip latency.
func BenchmarkWindow(b *testing.B) {
	srv := redistest.New(b)
	rdb := redistest.Client(b, srv)
	win := NewWindow(Packed)
	ctx := context.Background()
	if err := win.Load(ctx, rdb); err != nil {
		b.Fatal(err)
	}
	width, n := SplitWindow(time.Minute, 60)
	for _, nc := range []int{1, 3} {
		b.Run(fmt.Sprintf("counters=%d", nc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(16) // enough callers to keep Redis busy, not just measure latency
			b.RunParallel(func(pb *testing.PB) {
				counters := make([]Counter, nc)
				for i := range counters {
					counters[i] = Counter{Key: fmt.Sprintf("bench:{api}:%d:%d", nc, i), Bucket: width, Buckets: n, Limit: maxExact, Cost: 1}
				}
				for pb.Next() {
					res, err := win.Run(ctx, rdb, Charge, counters)
					if err != nil {
						b.Error(err)
						return
					}
					if !res.Allowed {
						b.Error("refused")
						return
					}
				}
			})
		})
	}
}
