package traffic

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

func rule(kv ...string) config.Rule {
	var r config.Rule
	for i := 0; i+1 < len(kv); i += 2 {
		r.Path = append(r.Path, config.Entry{Key: kv[i], Value: kv[i+1]})
	}
	return r
}

var (
	pizzaProd    = rule("api", "Pizza", "environment", "production")
	pizzaSandbox = rule("api", "Pizza", "environment", "sandbox")
	req          = &limiter.Request{Domain: "apim"}
)

func decide(r *Recorder, over bool, rules ...config.Rule) {
	r.Decided(context.Background(), req, rules, &limiter.Decision{Over: over})
}

// TestTwoReplicasFoldIntoOneSeries checks that what two replicas count in one
// second adds up in the series either of them reads.
func TestTwoReplicasFoldIntoOneSeries(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	a, b := NewRecorder(rdb, "t:"), NewRecorder(rdb, "t:")
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0)

	decide(a, false, pizzaProd)
	decide(a, false, pizzaProd, rule("consumer", "x"), pizzaProd) // one call, named twice
	decide(a, true, pizzaProd)
	decide(b, false, pizzaProd, pizzaSandbox)
	decide(b, false, rule("api", "Pizza"))                                       // no environment: not an API environment
	decide(b, false, config.Rule{})                                              // matched nothing
	decide(b, true, rule("api", "Chat", "environment", "sandbox", "user", "u1")) // longer paths count for their API
	for _, r := range []*Recorder{a, b} {
		if err := r.Fold(ctx, t0.Add(10*time.Millisecond)); err != nil { // files under t0-1s
			t.Fatal(err)
		}
	}
	decide(a, false, pizzaProd)
	if err := a.Fold(ctx, t0.Add(time.Second+10*time.Millisecond)); err != nil { // under t0
		t.Fatal(err)
	}

	start, got, err := b.Read(ctx, "apim", 3, t0.Add(2*time.Second+200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !start.Equal(t0.Add(-time.Second)) {
		t.Errorf("start %v, want %v", start, t0.Add(-time.Second))
	}
	// Seconds t0-1, t0 and t0+1 (complete at t0+2.2s, folded at t0+2.01s).
	want := map[Key]Series{
		{"apim", "Pizza", "production"}: {Admitted: []uint64{3, 1, 0}, Refused: []uint64{1, 0, 0}},
		{"apim", "Pizza", "sandbox"}:    {Admitted: []uint64{1, 0, 0}, Refused: []uint64{0, 0, 0}},
		{"apim", "Chat", "sandbox"}:     {Admitted: []uint64{0, 0, 0}, Refused: []uint64{1, 0, 0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for _, k := range m.Keys() {
		if ttl := m.TTL(k); ttl <= 0 || ttl > Keep {
			t.Errorf("%s has TTL %v, want at most %v", k, ttl, Keep)
		}
	}
	// Second t0 may still be folding at t0+1.05s: the last one read is t0-1.
	_, got, _ = b.Read(ctx, "apim", 1, t0.Add(1050*time.Millisecond))
	if s := got[Key{"apim", "Pizza", "production"}]; s.Admitted[0] != 3 {
		t.Errorf("the second before the last whole one: %v, want 3", s)
	}
}

func TestIdleEnvironmentsAreForgotten(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	r := NewRecorder(rdb, "t:")
	decide(r, false, pizzaProd)
	now := time.Unix(1_800_000_000, 0)
	for i := range int(Keep/time.Second) + 2 {
		if err := r.Fold(context.Background(), now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.tracked.Load(); n != 0 {
		t.Errorf("%d environments tracked after %v without calls", n, Keep)
	}
}

// BenchmarkDecided is the hot-path cost of counting a decision: compare it
// with the no-op gRPC call and the decision itself (bench/README.md).
func BenchmarkDecided(b *testing.B) {
	r := NewRecorder(nil, "t:")
	rules := []config.Rule{pizzaProd}
	dec := &limiter.Decision{}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r.Decided(ctx, req, rules, dec)
		}
	})
}

// BenchmarkFold is one replica's fold of a second with 100 API environments
// that had calls, on a real redis-server: the once-a-second cost.
func BenchmarkFold(b *testing.B) {
	rdb := redistest.Client(b, redistest.New(b))
	r := NewRecorder(rdb, "t:")
	ctx := context.Background()
	rules := make([]config.Rule, 100)
	for i := range rules {
		rules[i] = rule("api", fmt.Sprintf("API%d", i), "environment", "production")
	}
	now := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		for i := range rules {
			decide(r, i%7 == 0, rules[i])
		}
		now = now.Add(time.Second)
		if err := r.Fold(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
}
