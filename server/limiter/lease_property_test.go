package limiter

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// The lease property test runs three replicas (three Limiters with leases)
// in one process on one miniredis, in simulated time: every decision, lease
// call, reply and sweep is an event at an instant of its own, so network
// delays, slow replies, lost replies and replica clocks that are offset and
// run fast or slow are all exact and repeatable. Redis' clock is the
// simulation's real time; a replica reads its own clock (offset + (1+skew) ×
// real time) and knows nothing else of time. Every admission is recorded at
// its true instant — the script's TIME for a counter decided in Redis, the
// decision's own instant for a counter spent from a lease — and no closed
// interval of length W may ever hold more than L on any counter.

// simEvent is one thing that happens at an instant of the simulation.
type simEvent struct {
	at  time.Duration
	seq int
	fn  func()
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	return q[i].at < q[j].at || q[i].at == q[j].at && q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// leaseSim is the simulated world: time, Redis, and the events to come.
type leaseSim struct {
	t        *testing.T
	rng      *rand.Rand
	mr       *miniredis.Miniredis
	rdb      *redis.Client
	date     time.Time     // real time 0
	now      time.Duration // real time
	lastExec time.Duration // Redis runs scripts in order: its clock never goes back
	queue    simQueue
	seq      int
	// execAt is when the script about to run through a simScripter runs.
	execAt time.Duration
	// lastKeys are the keys of the latest script call, for telling which
	// counters of a decision went to Redis.
	lastKeys []string
	delay    func() time.Duration // one-way network delay
	// lose, when set, says whether a lease call's reply is lost (after it
	// ran, or before: the caller gets an error either way).
	lose func() (before, after bool)
	// scripts counts script calls (direct and lease).
	scripts int
}

func (s *leaseSim) at(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.queue, &simEvent{at: d, seq: s.seq, fn: fn})
}

// run processes events until real time end.
func (s *leaseSim) run(end time.Duration) {
	for s.queue.Len() > 0 && s.queue[0].at <= end {
		e := heap.Pop(&s.queue).(*simEvent)
		s.now = e.at
		e.fn()
	}
	s.now = end
}

// exec runs fn as a script of Redis at real time at (or later, when Redis
// already ran something later): Redis' clock is set to that instant.
func (s *leaseSim) exec(at time.Duration, fn func()) time.Duration {
	at = max(at, s.lastExec)
	s.lastExec = at
	s.mr.SetTime(s.date.Add(at))
	s.execAt = at
	fn()
	return at
}

// simScripter is the Redis of one replica's direct decisions: each call runs
// one network delay after the decision's instant.
type simScripter struct{ s *leaseSim }

func (r simScripter) run(keys []string, fn func() *redis.Cmd) *redis.Cmd {
	var cmd *redis.Cmd
	r.s.lastKeys = append(r.s.lastKeys[:0], keys...)
	r.s.scripts++
	r.s.exec(r.s.now+r.s.delay(), func() { cmd = fn() })
	return cmd
}

func (r simScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.run(keys, func() *redis.Cmd { return r.s.rdb.Eval(ctx, script, keys, args...) })
}
func (r simScripter) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return r.run(keys, func() *redis.Cmd { return r.s.rdb.EvalSha(ctx, sha, keys, args...) })
}
func (r simScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return r.run(keys, func() *redis.Cmd { return r.s.rdb.EvalRO(ctx, script, keys, args...) })
}
func (r simScripter) EvalShaRO(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	return r.run(keys, func() *redis.Cmd { return r.s.rdb.EvalShaRO(ctx, sha, keys, args...) })
}
func (r simScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return r.s.rdb.ScriptExists(ctx, hashes...)
}
func (r simScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return r.s.rdb.ScriptLoad(ctx, script)
}

// simReplica is one replica: a Limiter with leases whose clock, lease calls
// and sweeper are driven by the simulation.
type simReplica struct {
	l      *Limiter
	offset time.Duration
	skew   float64 // its clock runs 1+skew times as fast as real time
}

func (r *simReplica) clock(s *leaseSim) time.Duration {
	return r.offset + time.Duration(float64(s.now)*(1+r.skew))
}

// heldLeases is what one counter's slot held before a decision: its
// current lease and the next bucket's, with what each had left.
type heldLeases struct {
	leases [2]*lease
	left   [2]int64
}

func (r *simReplica) leasesHeld(counters []lua.Counter) []heldLeases {
	out := make([]heldLeases, len(counters))
	for i, c := range counters {
		v, ok := r.l.leases.slots.Load(c.Key)
		if !ok {
			continue
		}
		s := v.(*leaseSlot)
		for j, ls := range [2]*lease{s.cur.Load(), s.next.Load()} {
			if ls != nil {
				out[i].leases[j], out[i].left[j] = ls, ls.left.Load()
			}
		}
	}
	return out
}

// spent is the lease that a decision of cost units spent from.
func (h heldLeases) spent(cost int64) *lease {
	for j, ls := range h.leases {
		if ls != nil && ls.left.Load() == h.left[j]-cost {
			return ls
		}
	}
	return nil
}

func newSimReplica(s *leaseSim, set *config.Set, name string, offset time.Duration, skew, drift float64) *simReplica {
	r := &simReplica{offset: offset, skew: skew}
	r.l = New(func() *config.Set { return set }, simScripter{s}, "sim:")
	r.l.now = func() time.Time { return s.date.Add(r.clock(s)) }
	var window *lua.Window = r.l.window
	send := func(counters []lua.Counter, done func(lua.Result, error)) {
		// The call runs one delay after it was sent, its reply arrives one
		// delay after it ran.
		s.scripts++
		s.at(s.now+s.delay(), func() {
			before, after := false, false
			if s.lose != nil {
				before, after = s.lose()
			}
			if before {
				s.at(s.now+s.delay(), func() { done(lua.Result{}, errors.New("sim: lost before it ran")) })
				return
			}
			var res lua.Result
			var err error
			ran := s.exec(s.now, func() { res, err = window.Run(context.Background(), s.rdb, lua.Charge, counters) })
			if after {
				res, err = lua.Result{}, errors.New("sim: reply lost")
			}
			s.at(ran+s.delay(), func() { done(res, err) })
		})
	}
	if err := r.l.enableLeases(LeaseConfig{Holder: name}, leaseHooks{clock: func() time.Duration { return r.clock(s) }, send: send, drift: drift, sweep: true}); err != nil {
		s.t.Fatal(err)
	}
	var sweep func()
	sweep = func() {
		r.l.leases.sweep(r.clock(s))
		s.at(s.now+sweepEvery, sweep)
	}
	s.at(time.Duration(s.rng.Int64N(int64(sweepEvery))), sweep)
	return r
}

// simAdmission is one admitted cost on one counter at its true instant.
type simAdmission struct {
	at   time.Duration
	cost int64
}

type leaseSimConfig struct {
	name     string
	yaml     string // domain "sim", descriptor api=x
	overload float64
	costs    int // costs are 1..costs
	windows  int // simulated time, in windows of the first limit
	drift    float64
	skew     float64 // replica clocks run up to ±skew off
	slow     bool    // every replica clock runs exactly skew slow
	lose     float64 // chance that a lease call's reply is lost
	// bursts, when set, makes the load come and go: on for this many
	// windows, then off for as long.
	bursts float64
	// direct: the limit is too small to be leased (minLeaseBucketUnits).
	direct bool
	// ahead: the load leaves room for leases of the next bucket (aheadRoom),
	// and some admissions must be spent from them.
	ahead bool
	// light, when set, is the share of the load that goes to the first
	// replica; the other two share the rest (default: a third each).
	light float64
}

type leaseSimResult struct {
	admissions [][]simAdmission // per counter of the decision
	limits     []*config.Limit
	decisions  int
	leased     int   // decisions answered from leases alone
	fromLeases []int // per counter: admissions spent from a lease
	fromAhead  int   // admissions spent from a lease granted ahead into the next bucket
	// outside counts admissions spent from a lease at an instant outside
	// the bucket the lease was charged into (Lemma 1 says: never).
	outside int
	scripts int
	date    time.Time // real time 0
}

func runLeaseSim(t *testing.T, cfg leaseSimConfig, seed uint64) leaseSimResult {
	t.Helper()
	dom, err := config.Parse("sim.yaml", []byte(cfg.yaml))
	if err != nil {
		t.Fatal(err)
	}
	set, err := config.NewSet(dom)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x1ea5e))
	s := &leaseSim{t: t, rng: rng, mr: miniredis.RunT(t), date: time.Date(2025, 7, 4, 11, 59, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(time.Hour))))}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.mr.Addr()})
	t.Cleanup(func() { _ = s.rdb.Close() })
	s.delay = func() time.Duration {
		if rng.IntN(50) == 0 {
			return time.Duration(5+rng.IntN(30)) * time.Millisecond // a slow reply
		}
		return time.Duration(50+rng.IntN(2000)) * time.Microsecond
	}
	if cfg.lose > 0 {
		s.lose = func() (bool, bool) { return rng.Float64() < cfg.lose/2, rng.Float64() < cfg.lose/2 }
	}
	s.mr.SetTime(s.date)

	var replicas []*simReplica
	for i := range 3 {
		skew := (2*rng.Float64() - 1) * cfg.skew
		if cfg.slow {
			skew = -cfg.skew
		}
		offset := time.Duration(rng.Int64N(int64(2*time.Hour))) - time.Hour
		replicas = append(replicas, newSimReplica(s, set, fmt.Sprintf("r%d", i), offset, skew, cfg.drift))
	}

	req := Request{Domain: "sim", Descriptors: []Descriptor{desc("api", "x")}}
	p, _ := replicas[0].l.plan(&req)
	res := leaseSimResult{admissions: make([][]simAdmission, len(p.counters)), fromLeases: make([]int, len(p.counters))}
	for _, u := range p.uses {
		res.limits = append(res.limits, u.limit)
	}
	first := res.limits[0]
	meanCost := float64(1+cfg.costs) / 2
	rate := cfg.overload * float64(first.Requests) / meanCost / first.Window.Seconds() // arrivals per second
	end := time.Duration(cfg.windows) * first.Window
	var arrive func()
	arrive = func() {
		r := replicas[rng.IntN(len(replicas))]
		if cfg.light > 0 {
			r = replicas[0]
			if rng.Float64() >= cfg.light {
				r = replicas[1+rng.IntN(2)]
			}
		}
		cost := uint64(1 + rng.IntN(cfg.costs))
		q := req
		q.Hits = cost
		s.lastKeys = s.lastKeys[:0]
		before := r.leasesHeld(p.counters)
		dec, err := r.l.ShouldRateLimit(context.Background(), &q)
		if err != nil {
			t.Fatalf("at %v: %v", s.now, err)
		}
		res.decisions++
		if dec.Leased {
			res.leased++
		}
		if !dec.Over {
			for i, c := range p.counters {
				at := s.now // spent from a lease at the decision's instant
				if slices.Contains(s.lastKeys, c.Key) {
					at = s.execAt // decided in Redis at the script's TIME
				} else {
					res.fromLeases[i]++
					// The lease spent from is the slot's current one or the
					// one of the next bucket: the one that now holds cost
					// units less (lease calls run later; a retired one holds
					// less than nothing).
					ls := before[i].spent(int64(cost))
					if ls == nil {
						t.Fatalf("at %v: admitted from a lease, but no lease of %s holds %d units less", s.now, c.Key, cost)
					}
					if redisNow := s.date.Add(s.now).UnixMicro(); redisNow/ls.width != ls.bucket {
						res.outside++
					}
					if ls.start != math.MinInt64 {
						res.fromAhead++
					}
				}
				res.admissions[i] = append(res.admissions[i], simAdmission{at, int64(cost)})
			}
		}
		next := s.now + time.Duration(rng.ExpFloat64()/rate*float64(time.Second)) + 1
		if on := time.Duration(cfg.bursts * float64(first.Window)); on > 0 && (next/on)%2 == 1 {
			next = (next/on + 1) * on // off: the next burst
		}
		s.at(next, arrive)
	}
	s.at(0, arrive)
	s.run(end)
	for _, r := range replicas {
		if err := r.l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	res.scripts, res.date = s.scripts, s.date
	return res
}

// mostInOneWindow returns the largest admitted cost within one closed
// interval of length w, and where it starts.
func mostInAnyWindow(adm []simAdmission, w time.Duration) (most int64, at time.Duration) {
	sort.Slice(adm, func(i, j int) bool { return adm[i].at < adm[j].at })
	var sum int64
	j := 0
	for i := range adm {
		for j < len(adm) && adm[j].at-adm[i].at <= w {
			sum += adm[j].cost
			j++
		}
		if sum > most {
			most, at = sum, adm[i].at
		}
		sum -= adm[i].cost
	}
	return most, at
}

// sustained is the admitted cost per window, as a fraction of the limit,
// over whole groups of n+1 buckets from the first bucket boundary after
// real time from (so that edge effects do not blur it: any n+1 buckets hold
// at most L, hence n/(n+1) of L per W under steady overload). A run too
// short for one group after from is measured from earlier, down to the
// first window's end; 0 means it is too short even for that.
func sustained(adm []simAdmission, lim *config.Limit, date time.Time, from, to time.Duration) float64 {
	width, n := lua.SplitWindow(lim.Window, lim.Buckets)
	group := time.Duration(n+1) * width
	from = max(min(from, to-group-width), lim.Window)
	start := date.Add(from).Truncate(width).Add(width).Sub(date)
	groups := (to - start) / group
	if groups < 1 {
		return 0
	}
	end := start + groups*group
	var sum int64
	for _, a := range adm {
		if a.at >= start && a.at < end {
			sum += a.cost
		}
	}
	return float64(sum) * lim.Window.Seconds() / (end - start).Seconds() / float64(lim.Requests)
}

var leaseSimConfigs = []leaseSimConfig{
	{name: "1000 per 1s, costs 1-5, 3x overload", overload: 3, costs: 5, windows: 7, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 1000}
`},
	{name: "20 per 2s, 3x overload (too small to lease)", overload: 3, costs: 1, windows: 10, direct: true, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 2s, requests: 20}
`},
	{name: "1000 per 1s, costs 1-3, 3x overload, lost replies", overload: 3, costs: 3, windows: 5, lose: 0.05, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 1000}
`},
	{name: "1000 per 1s, bursts at 4x, one replica light", overload: 4, costs: 2, windows: 6, bursts: 1.5, light: 0.1, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 1000}
`},
	{name: "1500 per 3s beside 600 per 1s not leased, costs 1-3, 1.5x", overload: 1.5, costs: 3, windows: 3, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limits:
      - {window: 3s, requests: 1500}
      - {window: 1s, requests: 600, lease: off}
`},
	{name: "1000 per 1s, below the limit", overload: 0.8, costs: 2, windows: 4, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 1000}
`},
	{name: "10000 per 1s, far below the limit (leases ahead)", overload: 0.2, costs: 2, windows: 2, ahead: true, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 10000}
`},
	{name: "10000 per 1s, bursts at 1.5x (leases ahead, then the limit)", overload: 1.5, costs: 3, windows: 3, bursts: 0.5, ahead: true, yaml: `
domain: sim
descriptors:
  - key: api
    rate_limit: {window: 1s, requests: 10000}
`},
}

// TestLeasesKeepTheWindowAcrossReplicas is the window property with leases:
// three replicas, random arrivals and costs, replica clocks offset by up to
// an hour and running up to 0.9% fast or slow (the drift margin covers 1%),
// random network delays with slow and lost replies, steady and bursty load.
// No interval of length W may hold more than L on any counter, no unit may
// be spent from a lease outside the bucket it was charged into (Lemma 1 of
// docs/leases.md, checked at every spend), and under 3x overload the
// sustained admission must be at least 0.85 L per W (the bucketed window
// itself gives n/(n+1)).
func TestLeasesKeepTheWindowAcrossReplicas(t *testing.T) {
	for ci, cfg := range leaseSimConfigs {
		cfg.skew = 0.009
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			res := runLeaseSim(t, cfg, uint64(ci+1))
			for i, lim := range res.limits {
				most, at := mostInAnyWindow(res.admissions[i], lim.Window)
				if most > int64(lim.Requests) {
					t.Errorf("limit %s: %d admitted in the %v from %v; the limit is %d", lim.ID, most, lim.Window, at, lim.Requests)
				}
			}
			if res.outside > 0 {
				t.Errorf("%d admissions were spent from a lease outside the bucket it was charged into", res.outside)
			}
			lim := res.limits[0]
			frac := sustained(res.admissions[0], lim, res.date, 2*lim.Window, time.Duration(cfg.windows)*lim.Window)
			t.Logf("%d decisions (%d answered from leases alone), %d of %d admissions on %s spent from leases (%d from leases of the next bucket), %.3f script calls per decision; sustained %.3f L per W",
				res.decisions, res.leased, res.fromLeases[0], len(res.admissions[0]), lim.ID, res.fromAhead, float64(res.scripts)/float64(res.decisions), frac)
			if cfg.ahead && res.fromAhead == 0 {
				t.Errorf("no admission was spent from a lease of the next bucket")
			}
			if cfg.overload >= 3 && cfg.bursts == 0 && frac < 0.85 {
				t.Errorf("sustained %.3f L per W under %.0fx overload, want at least 0.85", frac, cfg.overload)
			}
			if leased := res.fromLeases[0] > 0; leased == cfg.direct {
				t.Errorf("%d admissions spent from leases on a limit that is %s", res.fromLeases[0], map[bool]string{true: "too small to lease", false: "leased"}[cfg.direct])
			}
		})
	}
}

// TestLeaseSimCatchesClocksBeyondTheMargin is the twin that shows the
// property test can fail: replica clocks 5% slow, five times what the drift
// margin covers, make replicas spend leases after their bucket has ended.
func TestLeaseSimCatchesClocksBeyondTheMargin(t *testing.T) {
	cfg := leaseSimConfigs[0]
	cfg.skew, cfg.slow, cfg.windows = 0.05, true, 4
	res := runLeaseSim(t, cfg, 7)
	t.Logf("%d of %d lease spends outside their bucket", res.outside, res.fromLeases[0])
	if res.outside == 0 {
		t.Errorf("clocks 5%% slow with a 1%% margin: no lease spend outside its bucket; the check cannot see what it checks")
	}
}
