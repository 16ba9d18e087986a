package store

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
)

// benchScript has the shape of one sliding-window decision: TIME, HGETALL,
// HINCRBY, PEXPIRE (about what lua/window.lua costs Redis for one counter).
var benchScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HGETALL', KEYS[1])
local n = redis.call('HINCRBY', KEYS[1], t[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2000)
return {t[1], n}
`)

// cpuTime is the user+system CPU this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScripter runs the decision-shaped script from many goroutines
// (GOMAXPROCS × parallelism) through each way of sending it. Besides ns/op it
// reports cpu-ns/op, the CPU this process (the client side: go-redis and the
// Batcher, not Redis) spent per call. On a shared machine that number is
// steadier than ns/op, which also depends on how much CPU Redis got.
//
//	go test -run '^$' -bench Scripter -count 6 ./server/store/ | tee new.txt
//	benchstat old.txt new.txt
func BenchmarkScripter(b *testing.B) {
	rs := redistest.New(b)
	cases := []struct {
		name string
		cfg  Config
	}{
		{"plain", Config{Pipelining: PipelineNone}},
		{"plain-fifo", Config{Pipelining: PipelineNone, Tune: func(o *redis.Options) { o.PoolFIFO = true }}},
		{"plain-resp2", Config{Pipelining: PipelineNone, Tune: func(o *redis.Options) { o.Protocol = 2 }}},
		{"plain-minidle", Config{Pipelining: PipelineNone, Tune: func(o *redis.Options) { o.MinIdleConns = o.PoolSize }}},
		{"plain-pool64", Config{Pipelining: PipelineNone, Tune: func(o *redis.Options) { o.PoolSize = 64 }}},
		{"plain-buf4k", Config{Pipelining: PipelineNone, Tune: func(o *redis.Options) { o.ReadBufferSize, o.WriteBufferSize = 4096, 4096 }}},
		{"batch-f1", Config{Batch: BatchConfig{Flushers: 1}}},
		{"batch-f2", Config{Batch: BatchConfig{Flushers: 2}}},
		{"batch-f4", Config{Batch: BatchConfig{Flushers: 4}}},
	}
	for _, par := range []int{1, 32} {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/par=%d", c.name, par), func(b *testing.B) {
				s := openStore(b, rs.URL(), c.cfg)
				ctx := context.Background()
				key := testKey(b, "n")
				if err := benchScript.Load(ctx, s.Scripter).Err(); err != nil {
					b.Fatal(err)
				}
				b.SetParallelism(par)
				b.ReportAllocs()
				cpu0 := cpuTime()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := benchScript.Run(ctx, s.Scripter, []string{key}, 1).Err(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}
