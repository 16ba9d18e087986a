package lua

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// modelCounter is the reference model of one bucketed sliding-window counter,
// written from the algorithm's description, independent of the script.
type modelCounter struct {
	w, n, limit int64
	buckets     map[int64]int64 // bucket index -> count
}

type modelAnswer struct {
	ok                                 bool
	used, remaining, reset, retry, cur int64
}

// check evaluates cost at now without charging.
func (m *modelCounter) check(now, cost int64) modelAnswer {
	k := now / m.w
	var used int64
	var counted []int64
	for b, c := range m.buckets {
		if b >= k-m.n && b <= k {
			used += c
			if c != 0 {
				counted = append(counted, b)
			}
		}
	}
	sort.Slice(counted, func(i, j int) bool { return counted[i] < counted[j] })
	fits := func(used int64) bool {
		if cost > 0 {
			return used+cost <= m.limit
		}
		return used < m.limit
	}
	a := modelAnswer{ok: fits(used), used: used, remaining: max(m.limit-used, 0), cur: k}
	if len(counted) > 0 {
		a.reset = (counted[len(counted)-1]+m.n+1)*m.w - now
	}
	if !a.ok {
		a.retry = a.reset
		freed := int64(0)
		for _, b := range counted {
			freed += m.buckets[b]
			if fits(used - freed) {
				a.retry = (b+m.n+1)*m.w - now
				break
			}
		}
	}
	return a
}

// charge adds cost to the current bucket and drops the buckets that aged out.
func (m *modelCounter) charge(now, cost int64, a *modelAnswer) {
	k := now / m.w
	for b := range m.buckets {
		if b < k-m.n {
			delete(m.buckets, b)
		}
	}
	m.buckets[k] += cost
	a.used += cost
	a.remaining = max(m.limit-a.used, 0)
	a.reset = (k+m.n+1)*m.w - now
}

type admitted struct{ at, cost int64 }

// maxInWindow returns the largest total cost of events (sorted by time) that
// fall in one closed interval [t, t+window].
func maxInWindow(events []admitted, window int64) int64 {
	var best, sum int64
	j := 0
	for i := range events {
		for j < len(events) && events[j].at-events[i].at <= window {
			sum += events[j].cost
			j++
		}
		best = max(best, sum)
		sum -= events[i].cost
	}
	return best
}

func TestMaxInWindow(t *testing.T) {
	ev := []admitted{{0, 1}, {5, 2}, {10, 3}, {16, 4}}
	for _, tc := range []struct{ w, want int64 }{{0, 4}, {5, 5}, {10, 7}, {11, 9}, {16, 10}} {
		if got := maxInWindow(ev, tc.w); got != tc.want {
			t.Errorf("maxInWindow(w=%d) = %d, want %d", tc.w, got, tc.want)
		}
	}
}

type propConfig struct {
	window   time.Duration
	buckets  int
	limit    uint64
	overload float64 // arrival rate as a multiple of limit per window (in cost)
}

// TestWindowMatchesModel drives the script on miniredis with random arrivals
// and costs through two counters of different windows, and checks that every
// decision matches the reference model and that no closed interval of length
// W ever holds more than L of admitted cost.
func TestWindowMatchesModel(t *testing.T) {
	configs := []struct{ a, b propConfig }{
		{propConfig{time.Second, 1, 5, 2}, propConfig{3 * time.Second, 3, 12, 0}},
		{propConfig{time.Second, 4, 20, 3}, propConfig{10 * time.Second, 10, 150, 0}},
		{propConfig{3 * time.Second, 10, 100, 1.5}, propConfig{700 * time.Millisecond, 7, 30, 0}},
		{propConfig{10 * time.Second, 60, 100, 3}, propConfig{2 * time.Second, 5, 1000, 0}},
		{propConfig{1500 * time.Millisecond, 6, 7, 0.8}, propConfig{5 * time.Second, 2, 20, 0}},
	}
	for ci, cfg := range configs {
		for _, date := range pinnedDates {
			name := fmt.Sprintf("%d/L%d-per-%v-B%d/%s", ci, cfg.a.limit, cfg.a.window, cfg.a.buckets, date.Format("2006-01-02"))
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				seed := uint64(ci)*1000 + uint64(date.Year())
				runModelProperty(t, seed, date, cfg.a, cfg.b)
			})
		}
	}
}

func runModelProperty(t *testing.T, seed uint64, date time.Time, a, b propConfig) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	win := NewWindow(Packed)

	cfgs := []propConfig{a, b}
	counters := make([]Counter, 2)
	models := make([]*modelCounter, 2)
	windows := make([]int64, 2)
	for i, c := range cfgs {
		width, n := SplitWindow(c.window, c.buckets)
		counters[i] = Counter{Key: fmt.Sprintf("%s/%d", t.Name(), i), Bucket: width, Buckets: n, Limit: c.limit}
		models[i] = &modelCounter{w: width.Microseconds(), n: int64(n), limit: int64(c.limit), buckets: map[int64]int64{}}
		windows[i] = c.window.Microseconds()
	}

	// arrivals: exponential gaps at overload * L per W, mean cost 3
	W := windows[0]
	rate := a.overload * float64(a.limit) / 3 / float64(W) // events per µs
	duration := 12 * W
	now := date.UnixMicro() + rng.Int64N(W)
	end := now + duration
	admittedEv := make([][]admitted, 2)
	var calls int
	for now < end {
		now += max(1, int64(rng.ExpFloat64()/rate))
		cost := uint64(1 + rng.IntN(5))
		mode := Charge
		if rng.IntN(10) == 0 {
			mode = Peek
		}
		if rng.IntN(20) == 0 {
			cost = 0
		}
		counters[0].Cost, counters[1].Cost = cost, cost
		m.SetTime(time.UnixMicro(now))
		res, err := win.Run(ctx, rdb, mode, counters)
		if err != nil {
			t.Fatal(err)
		}
		calls++
		if res.Now.UnixMicro() != now {
			t.Fatalf("script time %d, want %d", res.Now.UnixMicro(), now)
		}

		answers := make([]modelAnswer, 2)
		allowed := true
		for i, md := range models {
			answers[i] = md.check(now, int64(cost))
			allowed = allowed && answers[i].ok
		}
		if allowed && mode == Charge && cost > 0 {
			for i, md := range models {
				md.charge(now, int64(cost), &answers[i])
				admittedEv[i] = append(admittedEv[i], admitted{now, int64(cost)})
			}
		}
		if res.Allowed != allowed {
			t.Fatalf("call %d at +%dµs cost %d: Allowed = %v, model %v", calls, now-date.UnixMicro(), cost, res.Allowed, allowed)
		}
		for i, an := range answers {
			want := CounterResult{Over: !an.ok, Used: uint64(an.used), Remaining: uint64(an.remaining),
				ResetAfter: time.Duration(an.reset) * time.Microsecond, RetryAfter: time.Duration(an.retry) * time.Microsecond}
			if mode == Charge && allowed && an.ok {
				want.Amount = int64(cost)
			}
			if res.Counters[i] != want {
				t.Fatalf("call %d at +%dµs cost %d mode %d counter %d:\n got %+v\nwant %+v", calls, now-date.UnixMicro(), cost, mode, i, res.Counters[i], want)
			}
		}
	}

	for i, ev := range admittedEv {
		if got := maxInWindow(ev, windows[i]); got > int64(cfgs[i].limit) {
			t.Errorf("counter %d: %d admitted in one interval of %v, limit %d", i, got, cfgs[i].window, cfgs[i].limit)
		}
	}
	if len(admittedEv[0]) == 0 {
		t.Errorf("nothing admitted in %d calls", calls)
	}
}

// TestWindowSustainedThroughput measures, under steady 3x overload, the
// admitted cost per window as a fraction of the limit. The bucketed window
// counts n+1 buckets, so in steady state any n+1 consecutive buckets admit
// about L: at least n/(n+1) of L per W. The measurement spans whole groups of
// n+1 buckets after a warm-up, so edge effects do not blur it.
func TestWindowSustainedThroughput(t *testing.T) {
	ctx := context.Background()
	for _, buckets := range []int{1, 4, 10, 60} {
		t.Run(fmt.Sprintf("B%d", buckets), func(t *testing.T) {
			t.Parallel()
			const limit = 200
			window := 10 * time.Second
			width, n := SplitWindow(window, buckets)
			rng := rand.New(rand.NewPCG(uint64(buckets), 42))
			m := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
			t.Cleanup(func() { rdb.Close() })
			win := NewWindow(Packed)
			c := []Counter{{Key: "tp", Bucket: width, Buckets: n, Limit: limit}}

			W, w := window.Microseconds(), width.Microseconds()
			group := int64(n+1) * w
			groups := (6*W + group - 1) / group
			rate := 3.0 * limit / 3 / float64(W) // 3x overload, mean cost 3
			now := pinnedDates[2].UnixMicro()
			warm := (now+2*W)/w*w + w // a bucket boundary after two windows
			end := warm + groups*group
			var ev []admitted
			var inSteady int64
			for {
				now += max(1, int64(rng.ExpFloat64()/rate))
				if now >= end {
					break
				}
				c[0].Cost = uint64(1 + rng.IntN(5))
				m.SetTime(time.UnixMicro(now))
				res, err := win.Run(ctx, rdb, Charge, c)
				if err != nil {
					t.Fatal(err)
				}
				if res.Allowed {
					ev = append(ev, admitted{now, int64(c[0].Cost)})
					if now >= warm {
						inSteady += int64(c[0].Cost)
					}
				}
			}
			if got := maxInWindow(ev, W); got > limit {
				t.Errorf("%d admitted in one window, limit %d", got, limit)
			}
			frac := float64(inSteady) * float64(W) / float64(end-warm) / limit
			floor := float64(n) / float64(n+1)
			t.Logf("buckets=%d (n=%d, width %v): sustained %.3f L per W under 3x overload (n/(n+1) = %.3f)", buckets, n, width, frac, floor)
			if frac < floor-0.02 {
				t.Errorf("sustained %.3f L per W, want at least %.3f", frac, floor-0.02)
			}
		})
	}
}
