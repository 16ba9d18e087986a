package server_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
	"github.com/sluice-rl/sluice/server/config"
)

// scaleConfig: production is capped at 20 calls per 2 s and in tokens,
// sandbox practically not at all (so its count is exactly what was charged).
const scaleConfig = `
domain: scale
descriptors:
  - key: api
    descriptors:
      - key: environment
        value: production
        rate_limit: {window: 2s, requests: 20}
        token_limit: {window: 1m, total_tokens: 100000, prompt_tokens: 60000}
      - key: environment
        value: sandbox
        rate_limit: {window: 1h, requests: 1000000}
`

func scaleDesc(api, env string) *sluicev1.Descriptor {
	return &sluicev1.Descriptor{Entries: []*sluicev1.Entry{{Key: "api", Value: api}, {Key: "environment", Value: env}}}
}

// slotOwner finds, for an API name stem, a name whose descriptor (with env)
// lives on a different cluster node than every name in avoid, by asking the
// cluster for slots and their owners.
func slotOwner(t *testing.T, rdb *redis.ClusterClient, stem, env string, avoid ...string) (api string, node string) {
	t.Helper()
	ctx := context.Background()
	//lint:ignore SA1019 CLUSTER SLOTS is what Redis 7.0 (this machine's) answers on every version
	slots, err := rdb.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	owner := func(api, env string) string {
		slot, err := rdb.ClusterKeySlot(ctx, "{scale|api="+api+"|environment="+env+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range slots {
			if int64(r.Start) <= slot && slot <= int64(r.End) {
				return r.Nodes[0].Addr
			}
		}
		t.Fatalf("slot %d has no owner", slot)
		return ""
	}
	taken := map[string]bool{}
	for _, a := range avoid {
		api, env, _ := strings.Cut(a, "/")
		taken[owner(api, env)] = true
	}
	for i := range 100 {
		api := fmt.Sprint(stem, i)
		if n := owner(api, env); !taken[n] {
			return api, n
		}
	}
	t.Fatalf("no name %s<n> on another node", stem)
	return "", ""
}

func usageOf(t *testing.T, c sluicev1.RateLimitServiceClient, api, env string) map[sluicev1.LimitKind]tokens {
	t.Helper()
	resp, err := c.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "scale", Descriptors: []*sluicev1.Descriptor{scaleDesc(api, env)}})
	if err != nil {
		t.Fatalf("GetUsage: %v", err)
	}
	out := map[sluicev1.LimitKind]tokens{}
	for _, l := range resp.Descriptors[0].Limits {
		out[l.Limit.Kind] = tokens{l.Used, l.Reserved, l.Remaining}
	}
	return out
}

// TestRedisCluster runs Sluice (two replicas) on a real 3-master cluster with
// calls whose descriptors live on different nodes.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node Redis Cluster")
	}
	cl := redistest.NewCluster(t, 3)
	rdb := redistest.ClusterClient(t, cl)
	cfg := writeConfig(t, scaleConfig)
	// Leases off: the test is about calls split by slot and the rollback
	// of the slots that charged, which a leased sandbox would never reach
	// (and its count would include units leased but not spent yet).
	direct := server.Config{ConfigPath: cfg, RedisURL: cl.URL(), Leases: config.LeaseOff}
	replicas := []*sluice{startSluiceWith(t, direct), startSluiceWith(t, direct)}
	clients := []sluicev1.RateLimitServiceClient{
		sluicev1.NewRateLimitServiceClient(dial(t, replicas[0])),
		sluicev1.NewRateLimitServiceClient(dial(t, replicas[1])),
	}
	c := clients[0]
	ctx := context.Background()

	// Sliding window and all or nothing under load: every call asks for 2
	// of capped production on one node and of uncapped sandbox on another.
	// No 2 s interval may admit more than 20, and sandbox must count exactly
	// the admitted calls: a refusal by production charged it nothing.
	t.Run("window and all or nothing under load", func(t *testing.T) {
		capped, _ := slotOwner(t, rdb, "Capped", "production")
		open, _ := slotOwner(t, rdb, "Open", "sandbox", capped+"/production")
		const (
			limit   = 20
			window  = 2 * time.Second
			callers = 32
			runFor  = 3 * time.Second
		)
		admitted, refused := hammer(t, callers, runFor, func(ctx context.Context, caller int) (bool, error) {
			resp, err := clients[caller%2].ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{
				Domain: "scale", Descriptors: []*sluicev1.Descriptor{scaleDesc(capped, "production"), scaleDesc(open, "sandbox")},
				HitsAddend: 2, // not 1: every refusal comes from Redis, not the over-limit cache
			})
			return err == nil && resp.OverallCode == sluicev1.Code_OK, err
		})
		if n, at := mostInOneWindow(admitted, window); 2*n > limit {
			t.Fatalf("%d calls of 2 admitted within %v of the call sent at %v; the limit is %d", n, window, at, limit)
		}
		got := usageOf(t, c, open, "sandbox")[sluicev1.LimitKind_REQUESTS]
		if got.used != 2*uint64(len(admitted)) {
			t.Fatalf("sandbox on the other node counted %d, but %d calls were admitted (%d refused): a refusal charged it", got.used, len(admitted), refused)
		}
		t.Logf("admitted %d, refused %d in %v (limit %d per %v); sandbox counted exactly the admitted", len(admitted), refused, runFor, limit, window)
	})

	t.Run("reserve and report across nodes", func(t *testing.T) {
		a, _ := slotOwner(t, rdb, "TokA", "production")
		b, _ := slotOwner(t, rdb, "TokB", "production", a+"/production")
		full, _ := slotOwner(t, rdb, "TokFull", "production", a+"/production", b+"/production")
		call := func(apis ...string) *sluicev1.ShouldRateLimitResponse {
			t.Helper()
			req := &sluicev1.ShouldRateLimitRequest{Domain: "scale", UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 300, CompletionTokens: 200}}
			for _, api := range apis {
				req.Descriptors = append(req.Descriptors, scaleDesc(api, "production"))
			}
			resp, err := c.ShouldRateLimit(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			return resp
		}
		resp := call(a, b)
		if resp.OverallCode != sluicev1.Code_OK || strings.Count(resp.ReservationId, ".") != 2 {
			t.Fatalf("reserve over two nodes: %v, id %q (want one record per slot)", resp.OverallCode, resp.ReservationId)
		}
		for _, api := range []string{a, b} {
			if u := usageOf(t, c, api, "production"); u[total] != (tokens{500, 500, 99500}) || u[prompt] != (tokens{300, 300, 59700}) {
				t.Errorf("%s after reserving: %v", api, u)
			}
		}
		rep, err := c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: resp.ReservationId, Usage: &sluicev1.Usage{PromptTokens: 100, CompletionTokens: 40}})
		if err != nil {
			t.Fatal(err)
		}
		again, err := clients[1].ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: resp.ReservationId, Usage: &sluicev1.Usage{PromptTokens: 7}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Limits) != 4 || fmt.Sprint(again.Limits) != fmt.Sprint(rep.Limits) {
			t.Errorf("report: %v\nrepeated: %v; want 4 limits, the same twice", rep.Limits, again.Limits)
		}
		for _, api := range []string{a, b} {
			if u := usageOf(t, c, api, "production"); u[total] != (tokens{140, 0, 99860}) || u[prompt] != (tokens{100, 0, 59900}) {
				t.Errorf("%s after the report: %v", api, u)
			}
		}

		// A refusal by a third node leaves the other two as they were.
		for range 20 {
			if r := call(full); r.OverallCode != sluicev1.Code_OK {
				t.Fatalf("filling %s: %v", full, r.OverallCode)
			}
		}
		resp = call(a, b, full)
		if resp.OverallCode != sluicev1.Code_OVER_LIMIT || resp.ReservationId != "" || resp.Statuses[0].Code != sluicev1.Code_OK || resp.Statuses[2].Code != sluicev1.Code_OVER_LIMIT {
			t.Fatalf("over three nodes with one full: %v id %q statuses %v", resp.OverallCode, resp.ReservationId, resp.Statuses)
		}
		for _, api := range []string{a, b} {
			u := usageOf(t, c, api, "production")
			if u[total] != (tokens{140, 0, 99860}) || u[sluicev1.LimitKind_REQUESTS].used != 1 {
				t.Errorf("%s after a refused call: %v; want unchanged", api, u)
			}
		}
	})
}

// TestSentinelFailoverUnderLoad fails the master over while 16 callers ask
// Sluice (on redis+sentinel://) with a 300 ms deadline: calls fail only
// briefly, only with Unavailable, never late, and all succeed afterwards on
// the new master.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis with Sentinels and fails over")
	}
	t.Run("SENTINEL FAILOVER", func(t *testing.T) {
		sentinelFailover(t, func(set *redistest.SentinelSet) (string, error) { return set.Failover(30 * time.Second) })
	})
	t.Run("master killed", func(t *testing.T) {
		sentinelFailover(t, func(set *redistest.SentinelSet) (string, error) { return set.KillMaster(30 * time.Second) })
	})
}

func sentinelFailover(t *testing.T, failover func(*redistest.SentinelSet) (string, error)) {
	set := redistest.NewSentinel(t, "sluice", 2)
	s := startSluice(t, writeConfig(t, scaleConfig), set.URL())
	c := sluicev1.NewRateLimitServiceClient(dial(t, s))
	const deadline = 300 * time.Millisecond
	type result struct {
		start, end time.Time
		code       codes.Code
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
		stop    = make(chan struct{})
	)
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				_, err := c.ShouldRateLimit(ctx, &sluicev1.ShouldRateLimitRequest{Domain: "scale", Descriptors: []*sluicev1.Descriptor{scaleDesc("F", "sandbox")}})
				end := time.Now()
				cancel()
				mu.Lock()
				results = append(results, result{start, end, status.Code(err)})
				mu.Unlock()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	time.Sleep(time.Second)
	failStart := time.Now()
	newMaster, err := failover(set)
	failEnd := time.Now()
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	// for the clients to follow the switch: within a second on a quiet
	// machine; up to 3.1 s seen with -race at load 25 on two cores
	const settle = 4 * time.Second
	time.Sleep(settle + 2*time.Second)
	close(stop)
	wg.Wait()

	var before, during, after, failed int
	var lastFail time.Time
	for _, r := range results {
		if took := r.end.Sub(r.start); took > deadline+200*time.Millisecond {
			t.Errorf("a call took %v with a %v deadline (code %v)", took, deadline, r.code)
		}
		if r.code != codes.OK {
			failed++
			// Unavailable, or DeadlineExceeded on a machine too busy to
			// deliver that answer in the last tenth of the deadline.
			if r.code != codes.Unavailable && r.code != codes.DeadlineExceeded {
				t.Errorf("a call failed with %v, want Unavailable", r.code)
			}
			if r.end.After(lastFail) {
				lastFail = r.end
			}
		}
		switch {
		case r.end.Before(failStart):
			before++
			if r.code != codes.OK {
				t.Errorf("a call failed before the failover: %v", r.code)
			}
		case r.start.After(failEnd.Add(settle)):
			after++
			if r.code != codes.OK {
				t.Errorf("a call failed %v after the failover completed: %v", r.start.Sub(failEnd), r.code)
			}
		default:
			during++
		}
	}
	if before == 0 || after < 100 {
		t.Fatalf("calls: %d before, %d during, %d after the failover: not enough load", before, during, after)
	}
	used := usageOf(t, c, "F", "sandbox")[sluicev1.LimitKind_REQUESTS].used
	if used == 0 {
		t.Errorf("the new master %s counts nothing", newMaster)
	}
	last := "none"
	if !lastFail.IsZero() {
		last = lastFail.Sub(failEnd).String() + " after the failover completed"
	}
	t.Logf("failover to %s took %v; calls %d before, %d during, %d after; %d failed (last %s); new master counts %d",
		newMaster, failEnd.Sub(failStart), before, during, after, failed, last, used)
}
