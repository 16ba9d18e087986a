// Package limiter turns a request's descriptors into the limits they match
// and decides them with one call of the sliding-window script.
//
// How it works: each descriptor is matched against the domain's config tree;
// limits that another matched limit `replaces` are dropped; every remaining
// (descriptor, limit) pair becomes one counter whose Redis key carries the
// domain and descriptor path. Two descriptors that name the same counter
// share it, their costs added, so a call can never check a counter twice and
// charge it twice. All counters go to Redis in one script call, which charges
// all of them or — when any enforced counter refuses — none. With quota leases
// on (leases.go), the counters this replica holds a lease on are decided from
// memory first, and only the others go to Redis.
package limiter

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// DefaultKeyPrefix starts every Redis key Sluice writes.
const DefaultKeyPrefix = "sluice:"

// StoreError is a failure of the counter store (Redis), or ErrCircuitOpen
// while the breaker keeps calls away from it: nothing is known to have been
// decided, and the caller's own failure policy applies. A deadline that ran
// out while waiting on Redis is a store failure only when Redis had longer
// than a healthy one ever needs (see blame.go); else it is a
// *CallerGoneError.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "counter store: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// DefaultReservationGrace is how long a reservation record outlives the
// longest window it reserved on, for slow calls to report into.
const DefaultReservationGrace = 10 * time.Minute

// Limiter decides requests against the current config and the Redis counters.
type Limiter struct {
	configs  func() *config.Set
	rdb      redis.Scripter
	window   *lua.Window
	report   *lua.Report
	prefix   string
	grace    time.Duration
	observer Observer
	breaker  *breaker
	// patience, ping, lastAnswer and pinging judge whose failure a call's
	// deadline is (blame.go).
	patience   time.Duration
	ping       func(context.Context) error
	lastAnswer atomic.Int64 // unix nanoseconds of Redis' latest answer
	pinging    atomic.Bool
	cache      *overLimitCache
	bounds     Bounds
	now        func() time.Time // the replica's clock, for the over-limit cache
	// cluster splits calls by hash slot (see cluster.go).
	cluster bool
	// quotaMode makes every descriptor quota-mode (see quota.go).
	quotaMode bool
	// shadowMode makes every limit shadow-mode (see shadow.go).
	shadowMode bool
	// leases, when on, decide counters from this replica's quota leases
	// (leases.go); nil when off.
	leases *leaseManager
}

// New returns a Limiter that reads the config through configs on every call
// (so a reload takes effect at once) and keeps its counters in rdb under keys
// starting with prefix (DefaultKeyPrefix when empty). When rdb talks to a
// Redis Cluster (see SetCluster) calls are split by hash slot; the prefix
// must then contain no '{' (it would change the keys' hash tags).
func New(configs func() *config.Set, rdb redis.Scripter, prefix string) *Limiter {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	l := &Limiter{
		configs: configs, rdb: rdb, prefix: prefix, grace: DefaultReservationGrace,
		window: lua.NewWindow(lua.Packed), report: lua.NewReport(lua.Packed),
		breaker: newBreaker(), now: time.Now,
		cluster:  isCluster(rdb),
		patience: DefaultRedisPatience, ping: defaultPing(rdb),
	}
	l.lastAnswer.Store(time.Now().UnixNano())
	l.SetBounds(Bounds{})
	return l
}

// SetCounterLayout changes the layout the scripts write counters in
// (lua.Packed unless set). Both layouts are always read. Call it before Load
// and before the first decision.
func (l *Limiter) SetCounterLayout(layout lua.Layout) {
	l.window, l.report = lua.NewWindow(layout), lua.NewReport(layout)
}

// SetReservationGrace changes how long reservation records outlive their
// longest window (DefaultReservationGrace).
func (l *Limiter) SetReservationGrace(d time.Duration) { l.grace = d }

// Load makes Redis compile the scripts ahead of the first call.
func (l *Limiter) Load(ctx context.Context) error {
	if err := errors.Join(l.window.Load(ctx, l.rdb), l.report.Load(ctx, l.rdb)); err != nil {
		return &StoreError{Err: err}
	}
	return nil
}

// ShouldRateLimit decides one request, charging every matched limit or none.
// Bad input returns an *InvalidError and charges nothing; a Redis failure
// returns a *StoreError. Over limit is a Decision, not an error.
func (l *Limiter) ShouldRateLimit(ctx context.Context, req *Request) (Decision, error) {
	if err := req.validate(&l.bounds); err != nil {
		return Decision{}, err
	}
	p, dom := l.plan(req)
	if err := req.checkForced(p); err != nil {
		return Decision{}, err
	}
	ds := newDecision(len(req.Descriptors))
	dec := &ds.dec
	for i := range dec.Statuses {
		r := &p.rules[i]
		st := &dec.Statuses[i]
		st.Shadow, st.Quota, st.Unlimited, st.Metadata = r.Shadow, p.quota[i], r.Unlimited, r.Metadata
	}
	if len(p.counters) == 0 {
		l.finish(ctx, req, p, dom, dec)
		return *dec, nil
	}
	// One clock reading serves the cache and, as the call's start, what it
	// remembers: taken before the call, the entry never outlives the refusal.
	start := l.now()
	if blocked, ok := l.fromCache(p, start); ok {
		dec.Over, dec.Cached = true, true
		p.settle(l.cachedResults(ctx, p, blocked), ds)
		l.finish(ctx, req, p, dom, dec)
		return *dec, nil
	}
	res, id, leased, err := l.decideLeased(ctx, p, dom.Name)
	if err != nil {
		var se *StoreError
		if !dom.FailOpen || !errors.As(err, &se) { // only Redis' failures fail open
			return Decision{}, err
		}
		dec.FailedOpen = true
		l.finish(ctx, req, p, dom, dec)
		return *dec, nil
	}
	if res.Allowed {
		dec.ReservationID = id
	}
	dec.Leased = leased
	l.remember(p, res, start)
	dec.Now = res.Now
	p.settle(res.Counters, ds)
	dec.Over = !res.Allowed || quotaRefuses(dec.Statuses)
	l.finish(ctx, req, p, dom, dec)
	return *dec, nil
}

// settle folds each counter's result into the status of its descriptor. The
// statuses' Limits share one backing array (the decision's own room when it
// fits), each capped at its own length so that appending to one never
// writes into the next; p.uses are in descriptor order.
func (p *plan) settle(results []lua.CounterResult, ds *decisionSpace) {
	all := ds.limits[:0]
	if len(p.uses) > cap(all) {
		all = make([]LimitState, 0, len(p.uses))
	}
	first := 0 // index in all of the current descriptor's first limit
	for k, u := range p.uses {
		c := results[u.counter]
		st := &ds.dec.Statuses[u.descriptor]
		decideStatus(st, u.limit, &p.counters[u.counter], c)
		if k > 0 && p.uses[k-1].descriptor != u.descriptor {
			first = k
		}
		all = append(all, LimitState{Limit: u.limit, Over: c.Over, Remaining: c.Remaining, Charged: c.Amount})
		st.Limits = all[first : k+1 : k+1]
	}
}

// finish adds what every decision carries — the refusal's headers and fault
// body when over — and tells the observer.
func (l *Limiter) finish(ctx context.Context, req *Request, p *plan, dom *config.Domain, dec *Decision) {
	dec.Refusal = refusalHeaders(dec, dom)
	dec.OverLimitResponse = dom.OverLimitResponse
	if dec.Over {
		dec.Body = dom.OverLimitBody
		if dec.Body == "" {
			dec.Body = DefaultOverLimitBody
		}
	}
	if l.observer != nil {
		l.observer.Decided(ctx, req, p.rules, dec)
	}
}

// Usage reports the current state of every limit the descriptors match,
// charging nothing.
func (l *Limiter) Usage(ctx context.Context, req *Request) ([]DescriptorUsage, error) {
	if err := req.validate(&l.bounds); err != nil {
		return nil, err
	}
	p, _ := l.plan(req)
	out := make([]DescriptorUsage, len(req.Descriptors))
	for i, d := range req.Descriptors {
		r := &p.rules[i]
		out[i] = DescriptorUsage{Entries: d.Entries, Matched: p.matched[i], Unlimited: r.Unlimited, Shadow: r.Shadow}
	}
	if len(p.counters) == 0 {
		return out, nil
	}
	for i := range p.counters {
		p.counters[i].Cost = 0
	}
	var res lua.Result
	if err := l.storeCall(ctx, "peek", func(ctx context.Context) (err error) {
		res, err = l.runSplit(ctx, lua.Peek, p.counters)
		return err
	}); err != nil {
		return nil, err
	}
	for _, u := range p.uses {
		c := res.Counters[u.counter]
		out[u.descriptor].Limits = append(out[u.descriptor].Limits, LimitUsage{
			Limit: u.limit, Used: c.Used, Remaining: c.Remaining, ResetAfter: c.ResetAfter,
			Reserved: uint64(max(c.Amount, 0)),
		})
	}
	return out, nil
}

// plan is what one request asks of Redis.
type plan struct {
	rules    []config.Rule
	matched  []bool
	quota    []bool // per descriptor: counts in quota mode (quota.go)
	counters []lua.Counter
	// leasable[i] is true when counters[i] may be decided from a quota
	// lease (see leasable).
	leasable []bool
	uses     []use
	// reserves is true when a counter reserves tokens; longest is the
	// longest window among those.
	reserves bool
	longest  time.Duration
	// space is the room the slices above start in (plan_space.go).
	space planSpace
}

// script names the script call the plan makes, for the observer.
func (p *plan) script() string {
	if p.reserves {
		return "reserve"
	}
	return "window"
}

// cacheable reports whether a refusal of counter c may be remembered: a
// request counter, enforced, refused at cost 1 (see overLimitCache).
func cacheable(c *lua.Counter) bool {
	return c.Kind == 0 && c.Op == lua.OpCheck && c.Cost == 1 && !c.Shadow
}

// fromCache reports the counters of p that the over-limit cache knows to
// refuse now, with what the refusal that put them there said; ok is false
// when there is none and Redis must decide. A counter of cost 1 or more
// cannot fit while a cost-1 call could not.
func (l *Limiter) fromCache(p *plan, now time.Time) (blocked map[int]lua.CounterResult, ok bool) {
	for i := range p.counters {
		c := &p.counters[i]
		if c.Kind != 0 || c.Op != lua.OpCheck || c.Cost == 0 || c.Shadow {
			continue
		}
		if retry, reset := l.cache.blockedFor(c.Key, c.Limit, now); retry > 0 {
			if blocked == nil {
				blocked = make(map[int]lua.CounterResult, 1)
			}
			blocked[i] = lua.CounterResult{Over: true, Used: c.Limit, ResetAfter: reset, RetryAfter: retry}
		}
	}
	return blocked, blocked != nil
}

// cachedResults is what one script call would have answered for a call the
// over-limit cache refuses: the blocked counters from memory, every other
// counter from a peek (one read-only script call, and none when every counter
// is blocked), so that each descriptor's status is as complete as a refusal
// from Redis. When the peek fails, the refusal stands and those counters
// carry their limit only.
func (l *Limiter) cachedResults(ctx context.Context, p *plan, blocked map[int]lua.CounterResult) []lua.CounterResult {
	out := make([]lua.CounterResult, len(p.counters))
	var rest []lua.Counter
	var at []int
	for i := range p.counters {
		if b, ok := blocked[i]; ok {
			out[i] = b
			continue
		}
		rest, at = append(rest, p.counters[i]), append(at, i)
	}
	if len(rest) == 0 {
		return out
	}
	var res lua.Result
	if err := l.storeCall(ctx, "peek", func(ctx context.Context) (err error) {
		res, err = l.runSplit(ctx, lua.Peek, rest)
		return err
	}); err != nil {
		return out
	}
	for j, i := range at {
		out[i] = res.Counters[j]
		out[i].Amount = 0 // a refused call charges nothing
	}
	return out
}

// remember puts the counters that refused at cost 1 into the over-limit
// cache until they could admit again, measured from before the call (so
// the entry never outlives the refusal), and forgets the counters the call
// gave hits back to.
func (l *Limiter) remember(p *plan, res lua.Result, start time.Time) {
	for i, c := range res.Counters {
		switch {
		case c.Over && c.RetryAfter > 0 && cacheable(&p.counters[i]):
			l.cache.block(p.counters[i].Key, p.counters[i].Limit, start.Add(c.RetryAfter), start.Add(c.ResetAfter), start)
		case c.Amount < 0 && p.counters[i].Kind == 0:
			l.cache.forget(p.counters[i].Key)
		}
	}
}

// use ties one limit of one descriptor to the counter that counts it.
type use struct {
	descriptor int
	limit      *config.Limit
	counter    int
}

// plan matches the descriptors and builds the counters. An unknown domain
// matches nothing, as in envoyproxy/ratelimit: every descriptor is OK.
func (l *Limiter) plan(req *Request) (*plan, *config.Domain) {
	p := newPlan(len(req.Descriptors))
	dom, ok := l.configs().Domain(req.Domain)
	if !ok {
		return p, &config.Domain{Name: req.Domain}
	}
	var replaced map[string]bool
	for i := range req.Descriptors {
		if o := req.Descriptors[i].Override; o != nil {
			p.rules[i] = config.Rule{Limits: []config.Limit{*o}, Path: req.Descriptors[i].Entries}
			p.matched[i] = true
			continue
		}
		p.rules[i], p.matched[i] = dom.Match(req.Descriptors[i].Entries)
		for _, lim := range p.rules[i].Limits {
			for _, name := range lim.Replaces {
				if replaced == nil {
					replaced = make(map[string]bool)
				}
				replaced[name] = true
			}
		}
	}
	var b strings.Builder
	for i := range req.Descriptors {
		r := &p.rules[i]
		r.Shadow = r.Shadow || l.shadowMode // SHADOW_MODE: as if every rule said shadow_mode
		p.quota[i] = l.inQuotaMode(r)
		for j := range r.Limits {
			lim := &r.Limits[j]
			if lim.Name != "" && replaced[lim.Name] {
				continue
			}
			cost, op := req.counter(&req.Descriptors[i], lim)
			inclusive, shadow := false, r.Shadow
			if p.quota[i] && lim.Kind == config.KindRequests {
				var never bool
				op, inclusive, never = quotaCounter(cost, op)
				shadow = shadow || never
			}
			key := counterKey(&b, l.prefix, dom.Name, r.Path, lim.ID)
			lease := l.leases != nil && leasable(lim, cost, op, shadow) && !inclusive && req.Descriptors[i].Override == nil
			p.uses = append(p.uses, use{descriptor: i, limit: lim, counter: p.addCounter(key, lim, cost, op, shadow, inclusive, lease)})
		}
	}
	return p, dom
}

// leasable reports whether a limit charged cost with op may be decided from
// a quota lease: an enforced request limit above 0 that allows leases,
// charged (not checked at cost 0, not given back). Overrides never are.
func leasable(lim *config.Limit, cost uint64, op lua.Op, shadow bool) bool {
	return lim.Lease == config.LeaseAuto && lim.Kind == config.KindRequests && lim.Requests > 0 &&
		op == lua.OpCheck && cost > 0 && !shadow
}

// addCounter adds a counter, or adds cost to the one already under key (with
// the same op and rule; counters that differ in them stay apart, each
// evaluated alone). lease says whether this use allows a quota lease; a
// shared counter is leased only when every use allows it.
func (p *plan) addCounter(key string, lim *config.Limit, cost uint64, op lua.Op, shadow, inclusive, lease bool) int {
	for i := range p.counters {
		if c := &p.counters[i]; c.Key == key && c.Op == op && c.Inclusive == inclusive {
			c.Cost += cost
			c.Shadow = c.Shadow && shadow
			p.leasable[i] = p.leasable[i] && lease && !c.Shadow && c.Limit == lim.Requests
			return i
		}
	}
	width, n := lua.SplitWindow(lim.Window, lim.Buckets)
	c := lua.Counter{Key: key, Bucket: width, Buckets: n, Limit: lim.Requests, Cost: cost, Op: op, Shadow: shadow, Inclusive: inclusive}
	if lim.Kind.IsTokens() {
		c.Kind = tokenCode(lim.Kind)
	}
	if op == lua.OpReserve {
		p.reserves = true
		p.longest = max(p.longest, lim.Window)
	}
	p.counters = append(p.counters, c)
	p.leasable = append(p.leasable, lease)
	return len(p.counters) - 1
}

// decideStatus folds one counter's result into its descriptor's status: an
// over counter decides over an admitting one (the longest wait wins among
// several, and a counter the request never fits waits longest), else the
// one with the least remaining.
func decideStatus(s *Status, lim *config.Limit, counter *lua.Counter, c lua.CounterResult) {
	never := neverFits(counter, c)
	switch {
	case s.Limit == nil,
		c.Over && !s.Over,
		c.Over && s.Over && waitsLonger(&Status{NeverFits: never, RetryAfter: c.RetryAfter}, s),
		!c.Over && !s.Over && c.Remaining < s.Remaining:
		s.Over = c.Over
		s.Limit = lim
		s.Remaining = c.Remaining
		s.ResetAfter = c.ResetAfter
		s.RetryAfter = c.RetryAfter
		s.NeverFits, s.Cost = never, 0
		if never {
			s.RetryAfter, s.Cost = 0, counter.Cost
		}
	}
}

// neverFits reports whether counter c refused a cost that it could not
// admit even empty: a check whose cost is above the limit. (A token
// reservation above a whole limit is admitted while usage is below it;
// quota-mode and forced charges are not refused for their size.)
func neverFits(c *lua.Counter, r lua.CounterResult) bool {
	return r.Over && c.Op == lua.OpCheck && !c.Inclusive && c.Cost > c.Limit
}
