package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// memoryAttack is the -attack memory run: what a caller without any special
// rights could do to memory before Sluice bounded its input (issue 9): many
// distinct descriptors of many long entries, each with a many-year limit
// override of 1 request, each sent twice (the second call is refused and
// lands in the over-limit cache). Every key such a call writes lives as long
// as its window. It prints the sluice process's resident memory and Redis's
// used_memory, key count and longest TTL before and after.
type memoryAttack struct {
	calls, entries, valueBytes, years int
	callers                           int
}

// attackState is what the attack measures at one moment.
type attackState struct {
	rssKB      uint64
	usedMemory uint64
	keys       int64
	noTTL      int64
	maxTTL     time.Duration
}

func measureAttack(ctx context.Context, pid int, rdb *redis.Client) (attackState, error) {
	var st attackState
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			st.rssKB, _ = strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			st.usedMemory, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		st.keys++
		ttl, err := rdb.PTTL(ctx, iter.Val()).Result()
		if err != nil {
			return st, err
		}
		switch {
		case ttl < 0:
			st.noTTL++
		case ttl > st.maxTTL:
			st.maxTTL = ttl
		}
	}
	return st, iter.Err()
}

// run sends the attack to sp and reports to w.
func (a memoryAttack) run(ctx context.Context, w io.Writer, sp *sluiceProc, rdb *redis.Client) error {
	conns, closeConns, err := dialConns(sp.grpcAddr, 1)
	if err != nil {
		return err
	}
	defer closeConns()
	client := rlsv3.NewRateLimitServiceClient(conns[0])
	before, err := measureAttack(ctx, sp.pid(), rdb)
	if err != nil {
		return err
	}
	value := func(d, e int) string {
		b := []byte(strings.Repeat("x", a.valueBytes))
		copy(b, fmt.Sprintf("%d-%d-", d, e))
		return string(b)
	}
	var mu sync.Mutex
	outcomes := map[string]int{}
	var wg sync.WaitGroup
	next := make(chan int)
	for range a.callers {
		wg.Go(func() {
			for i := range next {
				d := &ratelimitv3.RateLimitDescriptor{Limit: &ratelimitv3.RateLimitDescriptor_RateLimitOverride{
					RequestsPerUnit: 1, Unit: typev3.RateLimitUnit_YEAR,
				}}
				if a.years != 1 {
					d.Limit.UnitMultiplier = wrapperspb.UInt32(uint32(a.years))
				}
				d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: keyOpen, Value: "attack"})
				for e := 1; e < a.entries; e++ {
					d.Entries = append(d.Entries, &ratelimitv3.RateLimitDescriptor_Entry{Key: "k" + strconv.Itoa(e), Value: value(i/2, e)})
				}
				cctx, cancel := context.WithTimeout(ctx, callTimeout)
				resp, err := client.ShouldRateLimit(cctx, &rlsv3.RateLimitRequest{Domain: benchDomain, Descriptors: []*ratelimitv3.RateLimitDescriptor{d}})
				cancel()
				outcome := status.Code(err).String()
				if err == nil {
					outcome = resp.GetOverallCode().String()
				}
				mu.Lock()
				outcomes[outcome]++
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range a.calls {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	time.Sleep(2 * time.Second) // let the answers' garbage be collected at least once
	after, err := measureAttack(ctx, sp.pid(), rdb)
	if err != nil {
		return err
	}

	fmt.Fprintf(w, "memory attack: %d calls (each descriptor twice), %d entries of %d bytes, override %d × YEAR of 1 request, %d callers, %v\n",
		a.calls, a.entries, a.valueBytes, a.years, a.callers, took.Round(time.Millisecond))
	fmt.Fprintf(w, "answers: %v\n", outcomes)
	fmt.Fprintf(w, "%-8s %12s %18s %8s %10s %10s\n", "", "sluice RSS", "redis used_memory", "keys", "no TTL", "max TTL")
	for _, r := range []struct {
		name string
		st   attackState
	}{{"before", before}, {"after", after}} {
		fmt.Fprintf(w, "%-8s %9.1f MB %15.1f MB %8d %10d %9.0fd\n", r.name, float64(r.st.rssKB)/1024, float64(r.st.usedMemory)/(1<<20),
			r.st.keys, r.st.noTTL, r.st.maxTTL.Hours()/24)
	}
	return nil
}
