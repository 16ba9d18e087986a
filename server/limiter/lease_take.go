package limiter

import (
	"context"
	"time"

	"github.com/sluice-rl/sluice/lua"
)

// decideLeased decides the counters of p: from this replica's quota leases
// where it holds them, the others in Redis (as decide, through the breaker).
// leased is true when no Redis call was needed. A failure or refusal in Redis
// gives the leased units back: the decision charged nothing anywhere.
func (l *Limiter) decideLeased(ctx context.Context, p *plan, domain string) (res lua.Result, id string, leased bool, err error) {
	taken := l.leases.take(p, domain)
	if taken.all(p) {
		return taken.result(p), "", true, nil
	}
	rest := taken.rest(p)
	err = l.storeCall(ctx, rest.script(), func(ctx context.Context) (err error) {
		res, id, err = l.decide(ctx, rest)
		return err
	})
	if err != nil {
		l.leases.undo(&taken, p)
		return lua.Result{}, "", false, err
	}
	var slots []*leaseSlot
	if rest == p { // nothing taken: the slots take found are rest's
		slots = taken.slots
	}
	l.leases.learn(rest, slots, res)
	return l.leases.merge(&taken, p, res), id, false, nil
}

// learn keeps what a direct decision saw of counters this replica holds a
// lease on: what Redis has free, for the estimates of answers from the lease.
// slots, when not nil, are the counters' slots as take found them (aligned
// with p's counters, nil where there is none), so that learn need not look
// them up again; with nil slots it looks every one up.
func (m *leaseManager) learn(p *plan, slots []*leaseSlot, res lua.Result) {
	if m == nil {
		return
	}
	for i := range p.counters {
		if !p.leasable[i] {
			continue
		}
		var s *leaseSlot
		if slots != nil {
			s = slots[i]
		} else if v, ok := m.slots.Load(p.counters[i].Key); ok {
			s = v.(*leaseSlot)
		}
		if s != nil {
			for _, ls := range [2]*lease{s.cur.Load(), s.next.Load()} {
				if ls != nil && ls.limit == p.counters[i].Limit {
					ls.see(int64(res.Counters[i].Remaining), res.Now.UnixMicro())
				}
			}
		}
	}
}

// leaseTake is what one decision took from this replica's leases: per
// counter of its plan, the lease it spent from (nil: none). Its slices, and
// the result it makes, start in the plan's room (plan_space.go). ShouldRateLimit
// takes first, sends to Redis only the counters it did not take (the rest
// plan), and gives the units back when Redis refuses or fails.
type leaseTake struct {
	t      time.Duration // the clock reading all takes used
	read   bool          // t is set
	leases []*lease      // aligned with the plan's counters; nil when nothing was taken
	taken  int
	// slots, aligned with the plan's counters, are the slots take found
	// (nil where it found or made none), for learn; nil when it found none.
	slots []*leaseSlot
}

// take spends, for every counter of p that may be leased, its cost from the
// counter's lease, and asks for lease calls where they are due. It returns
// an empty leaseTake when leases are off or nothing could be taken.
func (m *leaseManager) take(p *plan, domain string) leaseTake {
	var lt leaseTake
	if m == nil {
		return lt
	}
	for i := range p.counters {
		if !p.leasable[i] {
			continue
		}
		c := &p.counters[i]
		if c.Bucket < minLeaseBucket || c.Limit < minLeaseBucketUnits*uint64(c.Buckets+1) {
			continue
		}
		s := m.slot(c, domain)
		if s == nil {
			continue
		}
		if lt.slots == nil {
			lt.slots = zeroed(p.space.slots[:], len(p.counters))
		}
		lt.slots[i] = s
		if !lt.read {
			lt.t, lt.read = m.clock(), true
		}
		s.demand.Add(int64(c.Cost))
		if int64(lt.t)-s.seen.Load() >= int64(time.Millisecond) {
			// to the millisecond: the idle checks are in seconds, and a
			// store on every decision bounces the line between cores
			s.seen.Store(int64(lt.t))
		}
		ls := s.cur.Load()
		if ls == nil || !ls.usable(c.Limit, lt.t) {
			if next := s.next.Load(); next != nil && next.usable(c.Limit, lt.t) {
				// The next bucket's lease, now that Redis has surely entered
				// it: the refill makes it the current one (and retires the
				// lease before it) unless a lease call is under way.
				m.refill(s, c, lt.t)
				if ls = s.cur.Load(); ls == nil || !ls.usable(c.Limit, lt.t) {
					ls = next
				}
			}
		}
		if ls == nil || !ls.usable(c.Limit, lt.t) || !ls.take(int64(c.Cost)) {
			m.refill(s, c, lt.t)
			continue
		}
		if lt.leases == nil {
			lt.leases = zeroed(p.space.leases[:], len(p.counters))
		}
		lt.leases[i] = ls
		lt.taken++
		if ls.left.Load() < ls.low.Load() || int64(lt.t) >= ls.aheadAt.Load() {
			// about to run dry, or its bucket about to end: ask for more (or
			// for the next bucket's lease) before it does
			m.refill(s, c, lt.t)
		}
	}
	return lt
}

// all reports whether every counter of p was taken from a lease: the
// decision needs no Redis call.
func (lt *leaseTake) all(p *plan) bool { return lt.taken > 0 && lt.taken == len(p.counters) }

// rest is the plan of the counters p still has to send to Redis: p itself
// when nothing was taken.
func (lt *leaseTake) rest(p *plan) *plan {
	if lt.taken == 0 {
		return p
	}
	r := &plan{reserves: p.reserves, longest: p.longest}
	r.counters, r.leasable = r.space.counters[:0], r.space.leasable[:0]
	for i := range p.counters {
		if lt.leases[i] == nil {
			r.counters = append(r.counters, p.counters[i])
			r.leasable = append(r.leasable, p.leasable[i])
		}
	}
	return r
}

// undo gives back what the decision took; it did not go through.
func (m *leaseManager) undo(lt *leaseTake, p *plan) {
	if lt.taken == 0 {
		return
	}
	for i, ls := range lt.leases {
		if ls != nil && !ls.giveBack(int64(p.counters[i].Cost)) {
			// Retired meanwhile: the units stay counted, unspent.
			m.report(m.domainOf(p.counters[i].Key), LeaseActivity{Wasted: p.counters[i].Cost})
		}
	}
	lt.taken = 0
}

// domainOf is the domain a counter's slot was made for ("" when unknown).
func (m *leaseManager) domainOf(key string) string {
	if v, ok := m.slots.Load(key); ok {
		return v.(*leaseSlot).domain
	}
	return ""
}

// result is the answer of a decision every counter of which came from a
// lease: what the leases know, at the take's clock reading.
func (lt *leaseTake) result(p *plan) lua.Result {
	res := lua.Result{Allowed: true, Counters: zeroed(p.space.results[:], len(p.counters))}
	for i := range p.counters {
		lt.fill(&res, p, i)
	}
	return res
}

// merge completes the result of the counters sent to Redis (rest) with the
// taken ones, in p's counter order. When Redis refused, the taken units go
// back (undo) and are reported as not charged.
func (m *leaseManager) merge(lt *leaseTake, p *plan, rest lua.Result) lua.Result {
	if lt.taken == 0 {
		return rest
	}
	if !rest.Allowed {
		m.undo(lt, p)
	}
	res := lua.Result{Now: rest.Now, Allowed: rest.Allowed, Counters: zeroed(p.space.results[:], len(p.counters))}
	j := 0
	for i := range p.counters {
		if lt.leases[i] == nil {
			res.Counters[i] = rest.Counters[j]
			j++
			continue
		}
		lt.fill(&res, p, i)
		if !rest.Allowed {
			res.Counters[i].Amount = 0
		}
	}
	return res
}

// fill sets counter i of res from its lease.
func (lt *leaseTake) fill(res *lua.Result, p *plan, i int) {
	ls := lt.leases[i]
	remaining, reset := ls.estimate(lt.t)
	c := &p.counters[i]
	res.Counters[i] = lua.CounterResult{Used: c.Limit - remaining, Remaining: remaining, ResetAfter: reset, Amount: int64(c.Cost)}
	if res.Now.IsZero() {
		redisNow := ls.redisAt.Load() + (int64(lt.t)-ls.recvAt.Load())/int64(time.Microsecond)
		res.Now = time.UnixMicro(redisNow)
	}
}
