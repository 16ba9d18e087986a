// Package limiter turns a request's descriptors into the limits they match
// and decides them with one call of the sliding-window script.
//
// How it works: each descriptor is matched against the domain's config tree;
// limits that another matched limit `replaces` are dropped; every remaining
// (descriptor, limit) pair becomes one counter whose Redis key carries the
// domain and descriptor path. Two descriptors that name the same counter
// share it, their costs added, so a call can never check a counter twice and
// charge it twice. All counters go to Redis in one script call, which charges
// all of them or — when any enforced counter refuses — none.
package limiter

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// DefaultKeyPrefix starts every Redis key Sluice writes.
const DefaultKeyPrefix = "sluice:"

// StoreError is a failure of the counter store (Redis): nothing is known to
// have been decided, and the caller's own failure policy applies.
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
}

// New returns a Limiter that reads the config through configs on every call
// (so a reload takes effect at once) and keeps its counters in rdb under keys
// starting with prefix (DefaultKeyPrefix when empty).
func New(configs func() *config.Set, rdb redis.Scripter, prefix string) *Limiter {
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	return &Limiter{
		configs: configs, rdb: rdb, prefix: prefix, grace: DefaultReservationGrace,
		window: lua.NewWindow(), report: lua.NewReport(),
	}
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
	if err := req.validate(); err != nil {
		return Decision{}, err
	}
	p, dom := l.plan(req)
	dec := Decision{Statuses: make([]Status, len(req.Descriptors))}
	for i := range dec.Statuses {
		dec.Statuses[i].Shadow = p.rules[i].Shadow
	}
	if len(p.counters) == 0 {
		if l.observer != nil {
			l.observer.Decided(ctx, req, p.rules, &dec)
		}
		return dec, nil
	}
	var res lua.Result
	var err error
	start := time.Now()
	if p.reserves {
		id := newReservationID()
		res, err = l.window.Reserve(ctx, l.rdb, p.counters, l.recordKey(id), p.longest+l.grace)
		l.observeStore(ctx, "reserve", start, err)
		if err == nil && res.Allowed {
			dec.ReservationID = id
		}
	} else {
		res, err = l.window.Run(ctx, l.rdb, lua.Charge, p.counters)
		l.observeStore(ctx, "window", start, err)
	}
	if err != nil {
		return Decision{}, storeError(err)
	}
	dec.Now = res.Now
	dec.Over = !res.Allowed
	for _, u := range p.uses {
		c := res.Counters[u.counter]
		st := &dec.Statuses[u.descriptor]
		decideStatus(st, u.limit, c)
		st.Limits = append(st.Limits, LimitState{Limit: u.limit, Over: c.Over, Remaining: c.Remaining, Charged: c.Amount})
	}
	dec.Headers = headersFor(&dec, dom)
	if dec.Over {
		dec.Body = dom.OverLimitBody
		if dec.Body == "" {
			dec.Body = DefaultOverLimitBody
		}
	}
	if l.observer != nil {
		l.observer.Decided(ctx, req, p.rules, &dec)
	}
	return dec, nil
}

// Usage reports the current state of every limit the descriptors match,
// charging nothing.
func (l *Limiter) Usage(ctx context.Context, req *Request) ([]DescriptorUsage, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	p, _ := l.plan(req)
	out := make([]DescriptorUsage, len(req.Descriptors))
	for i, d := range req.Descriptors {
		r := p.rules[i]
		out[i] = DescriptorUsage{Entries: d.Entries, Matched: p.matched[i], Unlimited: r.Unlimited, Shadow: r.Shadow}
	}
	if len(p.counters) == 0 {
		return out, nil
	}
	for i := range p.counters {
		p.counters[i].Cost = 0
	}
	start := time.Now()
	res, err := l.window.Run(ctx, l.rdb, lua.Peek, p.counters)
	l.observeStore(ctx, "peek", start, err)
	if err != nil {
		return nil, storeError(err)
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

// storeError wraps a script failure. A deadline that ran out while waiting
// on Redis is a store failure too: the service answers Unavailable, and the
// caller's own (longer) deadline is still running.
func storeError(err error) error { return &StoreError{Err: err} }

// plan is what one request asks of Redis.
type plan struct {
	rules    []config.Rule
	matched  []bool
	counters []lua.Counter
	uses     []use
	// reserves is true when a counter reserves tokens; longest is the
	// longest window among those.
	reserves bool
	longest  time.Duration
}

// use ties one limit of one descriptor to the counter that counts it.
type use struct {
	descriptor int
	limit      *config.Limit
	counter    int
}

// plan matches the descriptors and builds the counters. An unknown domain
// matches nothing, as in envoyproxy/ratelimit: every descriptor is OK.
func (l *Limiter) plan(req *Request) (plan, *config.Domain) {
	p := plan{rules: make([]config.Rule, len(req.Descriptors)), matched: make([]bool, len(req.Descriptors))}
	dom, ok := l.configs().Domain(req.Domain)
	if !ok {
		return p, &config.Domain{Name: req.Domain}
	}
	var replaced map[string]bool
	for i := range req.Descriptors {
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
		for j := range r.Limits {
			lim := &r.Limits[j]
			if lim.Name != "" && replaced[lim.Name] {
				continue
			}
			cost, op := req.counter(&req.Descriptors[i], lim)
			key := counterKey(&b, l.prefix, dom.Name, r.Path, lim.ID)
			p.uses = append(p.uses, use{descriptor: i, limit: lim, counter: p.addCounter(key, lim, cost, op, r.Shadow)})
		}
	}
	return p, dom
}

// addCounter adds a counter, or adds cost to the one already under key (with
// the same op; counters of different ops stay apart, each evaluated alone).
func (p *plan) addCounter(key string, lim *config.Limit, cost uint64, op lua.Op, shadow bool) int {
	for i := range p.counters {
		if c := &p.counters[i]; c.Key == key && c.Op == op {
			c.Cost += cost
			c.Shadow = c.Shadow && shadow
			return i
		}
	}
	width, n := lua.SplitWindow(lim.Window, lim.Buckets)
	c := lua.Counter{Key: key, Bucket: width, Buckets: n, Limit: lim.Requests, Cost: cost, Op: op, Shadow: shadow}
	if lim.Kind.IsTokens() {
		c.Kind = tokenCode(lim.Kind)
	}
	if op == lua.OpReserve {
		p.reserves = true
		p.longest = max(p.longest, lim.Window)
	}
	p.counters = append(p.counters, c)
	return len(p.counters) - 1
}

// decideStatus folds one counter's result into its descriptor's status: an
// over counter decides over an admitting one (the longest wait wins among
// several), else the one with the least remaining.
func decideStatus(s *Status, lim *config.Limit, c lua.CounterResult) {
	switch {
	case s.Limit == nil,
		c.Over && !s.Over,
		c.Over && s.Over && c.RetryAfter > s.RetryAfter,
		!c.Over && !s.Over && c.Remaining < s.Remaining:
		s.Over = c.Over
		s.Limit = lim
		s.Remaining = c.Remaining
		s.ResetAfter = c.ResetAfter
		s.RetryAfter = c.RetryAfter
	}
}
