package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/lua"
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

// BenchmarkDirectDecision is the direct path of sluice-spread: one charging
// window call (lua.Window, one counter of 1,000, a 1 s window of 10 buckets)
// through the Store sluice opens (Batcher with lua.Merger), from 16 callers
// per GOMAXPROCS. cpu-ns/op is this process's CPU per decision: the wrapper
// building the command line, the hand-off to a flusher, merging, go-redis and
// splitting the reply.
//
//	go test -run '^$' -bench DirectDecision -count 6 ./server/store/ | tee new.txt
func BenchmarkDirectDecision(b *testing.B) {
	rs := redistest.New(b)
	s := openStore(b, rs.URL(), Config{Batch: BatchConfig{Mergers: []Merger{lua.NewMerger()}}})
	ctx := context.Background()
	win := lua.NewWindow(lua.Packed)
	if err := win.Load(ctx, s.Scripter); err != nil {
		b.Fatal(err)
	}
	const counters = 1000
	keys := make([]string, counters)
	for i := range keys {
		keys[i] = testKey(b, fmt.Sprint("c", i))
	}
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := []lua.Counter{{Bucket: 100 * time.Millisecond, Buckets: 10, Limit: 1_000_000_000, Cost: 1}}
		for pb.Next() {
			c[0].Key = keys[next.Add(1)%counters]
			callCtx, cancel := context.WithTimeout(ctx, time.Second) // as the limiter's storeContext
			res, err := win.Run(callCtx, s.Scripter, lua.Charge, c)
			cancel()
			if err != nil || !res.Allowed {
				b.Errorf("%+v, %v", res, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
