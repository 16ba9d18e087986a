package limiter

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/server/config"
)

// BenchmarkLeasedDecision measures the replica's own work for a decision
// answered from a quota lease — the hot path of one busy API's backend cap:
// go test -run x -bench LeasedDecision -benchmem ./server/limiter
// Redis (miniredis here) is reached only for the lease's refills.
func BenchmarkLeasedDecision(b *testing.B) {
	dom, err := config.Parse("bench.yaml", []byte(`
domain: bench
descriptors:
  - key: api
    rate_limit: {unit: second, requests_per_unit: 1000000000}
`))
	if err != nil {
		b.Fatal(err)
	}
	set, err := config.NewSet(dom)
	if err != nil {
		b.Fatal(err)
	}
	mr := miniredis.RunT(b) // real time: leases follow the clock
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	b.Cleanup(func() { _ = rdb.Close() })
	l := New(func() *config.Set { return set }, rdb, "bench:")
	if err := l.EnableLeases(LeaseConfig{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close(context.Background()) })
	req := Request{Domain: "bench", Descriptors: []Descriptor{desc("api", "d0")}}
	ctx := context.Background()
	leased := 0
	for b.Loop() {
		dec, err := l.ShouldRateLimit(ctx, &req)
		if err != nil {
			b.Fatal(err)
		}
		if dec.Over {
			b.Fatal("over limit")
		}
		if dec.Leased {
			leased++
		}
	}
	b.ReportMetric(100*float64(leased)/float64(b.N), "leased%")
}
