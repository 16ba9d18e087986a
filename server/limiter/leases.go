package limiter

// How quota leases work here (the design and its proof: docs/leases.md)
//
// The lease manager keeps one slot per request counter that this replica
// decides with leasing allowed. A decision first tries the slot's lease: a
// clock reading before the deadline, the same limit, enough units — one
// compare-and-swap. When that fails, or when what is left would not last two
// lease round trips, it asks the slot for a lease call and (on failure)
// decides the counter directly, as without leases. A slot makes at most one
// lease call at a time (its busy flag), in the background: the call gives back
// what earlier leases of the counter left over (exact returns, op 4 with
// From) and asks for a new grant, sized by the replica's measured demand on
// the counter for the rest of the current bucket; all of it is one window
// call, which the store's Batcher merges with whatever decisions go to Redis
// at the same moment. A sweeper returns the leftovers of leases that nobody
// renewed, a few milliseconds after their bucket has ended. Close returns
// every lease.

import (
	"context"
	"crypto/rand"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-rl/sluice/lua"
)

// Lease tuning (docs/leases.md).
const (
	// DefaultLeaseDrift is the relative rate by which this replica's clock
	// and Redis' may differ while a lease lives (1%).
	DefaultLeaseDrift = 0.01
	// DefaultLeaseCounters bounds how many counters a replica tracks for
	// leasing; beyond it, new counters are decided directly.
	DefaultLeaseCounters = 100_000
	// minLeaseBucket: narrower buckets are never leased.
	minLeaseBucket = 5 * time.Millisecond
	// minLeaseBucketUnits: a limit that admits fewer units than this per
	// bucket on average (limit / (n+1)) is never leased. All of it is "near
	// the limit": a lease would be a large share of it, held at one replica
	// while another refuses; and its admissions are too few to cost Redis
	// much (its refusals come from the over-limit cache anyway).
	minLeaseBucketUnits = 32
	// minLeaseUnits: a lease is asked for only when the replica expects to
	// spend at least this many units from it. A lease costs Redis a grant
	// and, for what is left, a return: it pays only when it serves many
	// decisions. With 4, a counter seeing two decisions per bucket at
	// random leased whenever a few came close together, and spent less
	// than the grants and returns cost (TestACounterWithRandomArrivals…).
	minLeaseUnits = 16
	// aheadRoom: a lease of the next bucket is asked for only while the
	// counter has this many times the ask free.
	aheadRoom = 4
	// nearLimitGrant: a grant below this (and below what was asked) means the
	// counter is near its limit: no more lease calls until the bucket ends.
	nearLimitGrant = 2
	// leaseAskFactor scales the measured demand for the rest of the bucket,
	// or for leaseHorizon when the bucket lasts longer: a lease holds no
	// more than about a second of its replica's demand, refilled as it
	// runs low, so a replica whose demand drops (or that dies) holds little.
	leaseAskFactor = 1.5
	leaseHorizon   = time.Second
	// leaseMeasure: demand is measured over at least a bucket, or this long
	// when buckets are longer, so that a few decisions close together do
	// not read as a high rate (and a lease nobody will spend).
	leaseMeasure = 100 * time.Millisecond
	// idleLease: a lease no decision touched for this long is returned
	// before its bucket ends.
	idleLease = time.Second
	// leaseCallTimeout bounds one background lease call (and a bucket's
	// width does: after it, a grant would come too late to be of use).
	leaseCallTimeout = 250 * time.Millisecond
	// sweepEvery is how often the sweeper looks for leftovers to return;
	// sweepGrace is how long after a bucket's end it leaves a counter's
	// return to the counter's next lease call.
	sweepEvery = 25 * time.Millisecond
	sweepGrace = 5 * time.Millisecond
	// idleSlot: a slot without leases that saw no decision for this long is
	// forgotten (checked every evictEvery).
	idleSlot   = 30 * time.Second
	evictEvery = 5 * time.Second
)

// LeaseConfig tunes quota leases. The zero value is the default.
type LeaseConfig struct {
	// Holder names this replica in lease records: 1 to 32 characters of
	// [0-9a-z], different for every replica sharing the Redis. (Optional,
	// default: 12 random characters)
	Holder string
	// MaxCounters bounds the counters tracked for leasing. (Optional,
	// default DefaultLeaseCounters)
	MaxCounters int
}

// leaseHooks replace the manager's clock, its background calls and its
// sweeper in tests that drive time themselves.
type leaseHooks struct {
	clock func() time.Duration
	send  func(counters []lua.Counter, done func(lua.Result, error))
	drift float64 // 0: DefaultLeaseDrift
	sweep bool    // true: no sweeper goroutine; the test calls sweep
}

// EnableLeases turns on quota leases for the limits that allow them. Call it
// before serving; Close returns the leases.
func (l *Limiter) EnableLeases(cfg LeaseConfig) error { return l.enableLeases(cfg, leaseHooks{}) }

func (l *Limiter) enableLeases(cfg LeaseConfig, h leaseHooks) error {
	if cfg.Holder == "" {
		cfg.Holder = randomHolder()
	}
	if !lua.ValidHolder(cfg.Holder) {
		return errors.New("lease holder: want 1 to 32 characters of [0-9a-z]")
	}
	if cfg.MaxCounters <= 0 {
		cfg.MaxCounters = DefaultLeaseCounters
	}
	m := &leaseManager{
		holder: cfg.Holder, maxSlots: int64(cfg.MaxCounters), drift: DefaultLeaseDrift,
		clock: h.clock, send: h.send, forget: l.cache.forget,
		quit: make(chan struct{}),
	}
	if h.drift != 0 {
		m.drift = h.drift // a test's: may even be wrong (below 0), to show the margin matters
	}
	if m.clock == nil {
		start := time.Now()
		m.clock = func() time.Duration { return time.Since(start) } // monotonic
	}
	m.call = func(ctx context.Context, counters []lua.Counter) (res lua.Result, err error) {
		err = l.storeCall(ctx, "lease", func(ctx context.Context) (err error) {
			res, err = l.window.Run(ctx, l.rdb, lua.Charge, counters)
			return err
		})
		return res, err
	}
	if m.send == nil {
		m.send = m.sendInBackground
	}
	if lo, ok := l.observer.(LeaseObserver); ok {
		m.observer = lo
	}
	if !h.sweep {
		m.wg.Go(m.sweeper)
	}
	l.leases = m
	return nil
}

// Close returns this replica's leases (bounded by ctx) and stops the lease
// sweeper. The limiter keeps deciding, directly.
func (l *Limiter) Close(ctx context.Context) error {
	if l.leases == nil {
		return nil
	}
	return l.leases.close(ctx)
}

// randomHolder is a fresh holder name: 12 characters of [0-9a-z].
func randomHolder() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

// leaseManager holds one replica's leases.
type leaseManager struct {
	holder   string
	drift    float64
	maxSlots int64
	clock    func() time.Duration
	call     func(ctx context.Context, counters []lua.Counter) (lua.Result, error)
	send     func(counters []lua.Counter, done func(lua.Result, error))
	forget   func(key string) // the over-limit cache's entry of a counter that got a grant
	observer LeaseObserver

	slots  sync.Map // counter key -> *leaseSlot
	nslots atomic.Int64
	held   sync.Map // counter key -> *leaseSlot holding a lease or returns: what the sweeper visits

	rtt     atomic.Int64 // smoothed round trip of lease calls, ns
	redis   atomic.Bool  // a lease reply came: redisAt and recvAt are set
	redisAt atomic.Int64 // Redis TIME of the latest lease reply, µs
	recvAt  atomic.Int64 // clock ns when it arrived

	mu       sync.Mutex // guards closed against calls starting while Close waits
	closed   bool
	inflight sync.WaitGroup
	quit     chan struct{}
	wg       sync.WaitGroup
}

// leaseSlot is what the manager knows of one counter.
type leaseSlot struct {
	key    string
	domain string
	width  int64 // µs
	n      int64

	cur    atomic.Pointer[lease]
	next   atomic.Pointer[lease] // granted ahead into the bucket after cur's
	busy   atomic.Bool           // a lease call is being made; guards the fields below
	demand atomic.Int64          // units decisions asked of the counter here, ever
	seen   atomic.Int64          // clock ns of the latest decision, to the millisecond

	rate       float64 // measured demand, units per second
	measured   bool    // evalAt and evalDemand are set
	evalAt     time.Duration
	evalDemand int64
	near       bool          // near the limit: no lease calls before nearUntil
	nearUntil  time.Duration //
	pending    []leaseReturn // retired leases whose leftovers are not yet returned
}

// holds reports whether the slot holds a lease (of this bucket or the next)
// or returns not yet given back: what the sweeper must visit, and what keeps
// an idle slot from being forgotten. Held by the busy flag.
func (s *leaseSlot) holds() bool {
	return s.cur.Load() != nil || s.next.Load() != nil || len(s.pending) > 0
}

// leaseReturn is the leftover of a retired lease, to be given back.
type leaseReturn struct {
	bucket   int64
	limit    uint64
	spent    int64         // units spent from it: Redis keeps those
	leftover int64         // units it still held when retired
	until    time.Duration // after this reading its bucket has surely left the window
}

// slot returns the slot of counter c, making one when there is room; nil
// when the counter cannot be leased here.
func (m *leaseManager) slot(c *lua.Counter, domain string) *leaseSlot {
	if v, ok := m.slots.Load(c.Key); ok {
		return v.(*leaseSlot)
	}
	if m.nslots.Load() >= m.maxSlots {
		return nil
	}
	s := &leaseSlot{key: c.Key, domain: domain, width: c.Bucket.Microseconds(), n: int64(c.Buckets)}
	v, loaded := m.slots.LoadOrStore(c.Key, s)
	if !loaded {
		m.nslots.Add(1)
	}
	return v.(*leaseSlot)
}

// refill makes a lease call for slot s when one is due and none is under way:
// decision c could not be served from a lease at clock reading t, or the
// lease is running low. It never blocks.
func (m *leaseManager) refill(s *leaseSlot, c *lua.Counter, t time.Duration) {
	if !s.busy.CompareAndSwap(false, true) {
		return
	}
	rate := s.measure(t)
	m.promote(s, t)
	cur := s.cur.Load()
	expired := cur != nil && int64(t) >= cur.deadline.Load()
	if cur != nil && cur.limit == c.Limit && expired && t < cur.boundary {
		// Redis may still be in the lease's bucket: a grant now would be of
		// little use. Decide directly until the bucket has surely ended.
		s.busy.Store(false)
		return
	}
	if next := s.next.Load(); next != nil && next.limit == c.Limit && t < time.Duration(next.start) {
		// The next bucket's lease is here; it may be spent once Redis has
		// surely entered that bucket. A grant now would land there too.
		s.busy.Store(false)
		return
	}
	if cur != nil && !expired && cur.limit == c.Limit && s.next.Load() == nil && int64(t) >= cur.aheadAt.Load() {
		m.leaseAhead(s, cur, t, rate, c.Limit)
		return
	}
	held := int64(0)
	if cur != nil && (expired || cur.limit != c.Limit) {
		m.retire(s, cur)
		cur = nil
	} else if cur != nil {
		held = max(cur.left.Load(), 0)
	}
	ask := int64(0)
	if !s.near || t >= s.nearUntil {
		s.near = false
		ask = m.ask(s, rate, t, c.Limit) - held
		if ask < minLeaseUnits {
			ask = 0
		}
	}
	if leaseDebug != nil {
		leaseDebug("refill t=%v rate=%.1f ask=%d held=%d near=%v", t, rate, ask, held, s.nearUntil)
	}
	m.start(s, t, ask, c.Limit, false)
}

// promote makes the slot's lease of the next bucket its current lease once
// the current one is over (retired, or past its deadline) and Redis has
// surely entered the next bucket. Held by the busy flag.
func (m *leaseManager) promote(s *leaseSlot, t time.Duration) {
	next := s.next.Load()
	if next == nil || int64(t) < next.start {
		return
	}
	if cur := s.cur.Load(); cur != nil {
		if int64(t) < cur.deadline.Load() && cur.limit == next.limit {
			return // still spendable: the readings overlap by a few µs at most
		}
		m.retire(s, cur)
	}
	s.cur.Store(next)
	s.next.CompareAndSwap(next, nil)
}

// leaseAhead asks, near the end of lease cur's bucket, for a lease of the
// next bucket (granted ahead: docs/leases.md, "Leasing the next bucket"),
// sized by the measured demand for a whole bucket. It asks once per lease,
// and only far from the limit (what Redis had free at the latest answer is
// at least aheadRoom times the ask): near it, units held ahead would make
// the counter's other decisions meet the fuller of two windows, and leases
// stop there anyway. Held by the busy flag, which it hands to the call or
// frees.
func (m *leaseManager) leaseAhead(s *leaseSlot, cur *lease, t time.Duration, rate float64, limit uint64) {
	cur.aheadAt.Store(math.MaxInt64)
	ask := askFor(rate, float64(s.width), limit)
	free := cur.free.Load()
	if (s.near && t < s.nearUntil) || ask < minLeaseUnits || free == nil || free.free < aheadRoom*ask {
		s.busy.Store(false)
		return
	}
	m.start(s, t, ask, limit, true)
}

// aheadLead is how long before a lease's deadline its replica asks for the
// next bucket's lease: a few round trips, so that the grant lands while Redis
// is still in the lease's bucket, at most a quarter of the bucket.
func (m *leaseManager) aheadLead(width int64) time.Duration {
	lead := max(4*time.Duration(m.rtt.Load()), 2*time.Millisecond)
	return min(lead, time.Duration(width)*time.Microsecond/4)
}

// measure updates the slot's demand rate at clock reading t and returns it:
// the demand since the last measure, over at least measureEvery (a shorter
// stretch gives a lower bound of it and is not kept), averaged with the
// rate measured before. Held by the busy flag.
func (s *leaseSlot) measure(t time.Duration) float64 {
	d := s.demand.Load()
	if !s.measured {
		s.measured, s.evalAt, s.evalDemand = true, t, d
		return 0
	}
	dt := t - s.evalAt
	if every := s.measureEvery(); dt < every {
		// Too short to tell: two decisions close together are no rate. What
		// came since the last measure over at least every is a lower bound.
		return max(s.rate, float64(d-s.evalDemand)/every.Seconds())
	}
	inst := float64(d-s.evalDemand) / dt.Seconds()
	if s.rate == 0 {
		s.rate = inst
	} else {
		s.rate = (s.rate + inst) / 2
	}
	s.evalAt, s.evalDemand = t, d
	return s.rate
}

// measureEvery is the shortest stretch the slot measures its demand over:
// a bucket, at most leaseMeasure, at least a millisecond.
func (s *leaseSlot) measureEvery() time.Duration {
	return max(min(time.Duration(s.width)*time.Microsecond, leaseMeasure), time.Millisecond)
}

// ask sizes a grant: the measured demand for what is left of the bucket in
// which the call will run, times leaseAskFactor, at most the limit.
func (m *leaseManager) ask(s *leaseSlot, rate float64, t time.Duration, limit uint64) int64 {
	left := float64(s.width) / 2 // µs; until Redis' clock is known
	if m.redis.Load() {
		redisNow := m.redisAt.Load() + (int64(t)-m.recvAt.Load()+m.rtt.Load()/2)/int64(time.Microsecond)
		left = float64(s.width - redisNow%s.width)
	}
	return askFor(rate, left, limit)
}

// askFor sizes a grant for us microseconds of demand at rate units per
// second: times leaseAskFactor, for at most leaseHorizon, at most the limit.
func askFor(rate, us float64, limit uint64) int64 {
	want := math.Ceil(leaseAskFactor * rate * min(us, float64(leaseHorizon.Microseconds())) / 1e6)
	return int64(min(want, float64(limit)))
}

// retire stops lease ls of slot s and queues what it left for return.
// Held by the busy flag.
func (m *leaseManager) retire(s *leaseSlot, ls *lease) {
	s.cur.CompareAndSwap(ls, nil)
	s.next.CompareAndSwap(ls, nil)
	leftover, ok := ls.retire()
	if !ok {
		return
	}
	if next := s.next.Load(); next != nil && next.bucket == ls.bucket+1 && leftover > 0 {
		// Redis counted these when it answered the next bucket's grant; they
		// are on their way back, so the next lease's answers count them free.
		next.credit(leftover)
	}
	// The bucket has surely left the window n buckets after it surely ended.
	until := ls.boundary + time.Duration(ls.n*ls.width)*time.Microsecond
	s.pending = append(s.pending, leaseReturn{bucket: ls.bucket, limit: ls.limit, spent: ls.granted - leftover, leftover: leftover, until: until})
}

// leaseCall is one lease call of a slot under way.
type leaseCall struct {
	slot     *leaseSlot
	sent     time.Duration // clock reading before it was handed over
	returns  []leaseReturn
	ask      int64
	ahead    bool // the grant is into the bucket after Redis' current one
	limit    uint64
	counters []lua.Counter
}

// start sends the slot's due returns and, when ask > 0, a grant (ahead: into
// the next bucket), as one window call in the background; with nothing to
// send it frees the slot. Held by the busy flag, which the call's completion
// releases.
func (m *leaseManager) start(s *leaseSlot, t time.Duration, ask int64, limit uint64, ahead bool) {
	call := m.prepare(s, t, ask, limit, ahead)
	if call == nil {
		s.busy.Store(false)
		return
	}
	call.sent = m.clock()
	m.send(call.counters, func(res lua.Result, err error) { m.finish(call, res, err) })
}

// prepare builds the lease call of slot s at clock reading t: its due
// returns and, when ask > 0, a grant (ahead: into the next bucket). It is nil
// when there is nothing to send — made only then: decisions ask for refills
// that often come to nothing, and an empty call is garbage.
func (m *leaseManager) prepare(s *leaseSlot, t time.Duration, ask int64, limit uint64, ahead bool) *leaseCall {
	var returns []leaseReturn
	var wasted int64
	for _, r := range s.pending {
		if t >= r.until {
			wasted += r.leftover // its bucket has left every window: nothing to give back
			continue
		}
		returns = append(returns, r)
	}
	s.pending = s.pending[:0]
	if wasted > 0 {
		m.report(s.domain, LeaseActivity{Wasted: uint64(wasted)})
	}
	if len(returns) == 0 && ask == 0 {
		return nil
	}
	call := &leaseCall{slot: s, returns: returns, ask: ask, limit: limit, ahead: ahead && ask > 0}
	counters := make([]lua.Counter, 0, len(call.returns)+1)
	base := lua.Counter{Key: s.key, Bucket: time.Duration(s.width) * time.Microsecond, Buckets: int(s.n), Op: lua.OpLease, Holder: m.holder}
	for _, r := range call.returns {
		c := base
		c.Limit, c.Cost, c.From = r.limit, uint64(r.spent), r.bucket
		counters = append(counters, c)
	}
	if ask > 0 {
		c := base
		c.Limit, c.Cost, c.Ahead = limit, uint64(ask), call.ahead
		counters = append(counters, c)
	}
	call.counters = counters
	return call
}

// sendInBackground runs a lease call on a goroutine of its own (the
// production send).
func (m *leaseManager) sendInBackground(counters []lua.Counter, done func(lua.Result, error)) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		done(lua.Result{}, errLeasesClosed)
		return
	}
	m.inflight.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.inflight.Done()
		ctx, cancel := context.WithTimeout(context.Background(), min(leaseCallTimeout, counters[0].Bucket))
		defer cancel()
		done(m.call(ctx, counters))
	}()
}

var leaseDebug func(string, ...any)

var errLeasesClosed = errors.New("leases closed")

// finish applies the outcome of a lease call and frees its slot.
func (m *leaseManager) finish(call *leaseCall, res lua.Result, err error) {
	s := call.slot
	defer s.busy.Store(false)
	t := m.clock()
	if err != nil {
		// Nothing is known to have happened: the returns are tried again
		// (a return is idempotent), a grant that did happen stays counted.
		s.pending = append(s.pending, call.returns...)
		return
	}
	rtt := int64(t - call.sent)
	if old := m.rtt.Load(); old != 0 {
		rtt = (old*7 + rtt) / 8
	}
	m.rtt.Store(rtt)
	m.redisAt.Store(res.Now.UnixMicro())
	m.recvAt.Store(int64(t))
	m.redis.Store(true)

	var act LeaseActivity
	for i, r := range call.returns {
		back := -res.Counters[i].Amount
		act.Returned += uint64(back)
		act.Wasted += uint64(max(r.leftover-back, 0))
	}
	if call.ask > 0 {
		m.granted(s, call, res, t, &act)
	}
	if s.holds() {
		m.held.Store(s.key, s)
	}
	m.report(s.domain, act)
}

// granted applies the grant of a lease call (its last counter).
func (m *leaseManager) granted(s *leaseSlot, call *leaseCall, res lua.Result, t time.Duration, act *LeaseActivity) {
	gr := res.Counters[len(res.Counters)-1]
	now := res.Now.UnixMicro()
	k := now / s.width
	left := gr.BucketLeft
	// Lemma 1 of docs/leases.md: before this reading Redis is still in bucket k.
	deadline := call.sent + time.Duration(float64(left-time.Microsecond)/(1+m.drift))
	// After this one it has surely left it.
	boundary := t + time.Duration(float64(left)/(1-m.drift)) + time.Microsecond
	if call.ahead {
		m.grantedAhead(s, call, res, t, deadline, boundary, act)
		return
	}
	g := gr.Amount
	cur := s.cur.Load()
	if cur != nil && (cur.bucket != k || cur.limit != call.limit) {
		m.retire(s, cur) // another bucket: its deadline has passed
		cur = nil
	}
	if g > 0 {
		act.Grants++
		act.Granted += uint64(g)
		if cur == nil {
			cur = &lease{limit: call.limit, bucket: k, width: s.width, n: s.n, boundary: boundary, start: math.MinInt64}
			cur.deadline.Store(int64(deadline))
			cur.add(g)
			m.spendable(s, cur, gr, now, t)
			s.cur.Store(cur)
		} else {
			cur.add(g)
			cur.deadline.Store(max(cur.deadline.Load(), int64(deadline)))
			cur.boundary = min(cur.boundary, boundary)
			m.spendable(s, cur, gr, now, t)
			if next := s.next.Load(); next != nil {
				// What the next lease knows to be free did not count this
				// grant; its leftover will be credited there (retire).
				next.credit(-g)
			}
		}
	}
	if g < nearLimitGrant && g < call.ask {
		s.near, s.nearUntil = true, boundary
	}
}

// spendable sets what decisions from lease ls need after a grant into it:
// what Redis had free, its clock, when to refill and when to lease the next
// bucket ahead.
func (m *leaseManager) spendable(s *leaseSlot, ls *lease, gr lua.CounterResult, now int64, t time.Duration) {
	ls.see(int64(gr.Remaining), now)
	ls.redisAt.Store(now)
	ls.recvAt.Store(int64(t))
	rtt := max(m.rtt.Load(), int64(time.Millisecond))
	ls.low.Store(int64(math.Ceil(s.rate * 2 * float64(rtt) / 1e9)))
	ls.aheadAt.Store(ls.deadline.Load() - int64(m.aheadLead(s.width)))
	m.forget(s.key)
}

// grantedAhead applies a grant into the bucket after Redis' current one, k:
// a lease of bucket k+1, spendable from the reading after which Redis has
// surely left bucket k (boundary) until the one before which it is surely
// still in bucket k+1. The call's reading also bounds bucket k (Lemma 1), so
// it may extend the current lease's deadline, which cuts the time around the
// bucket's end in which decisions go to Redis.
func (m *leaseManager) grantedAhead(s *leaseSlot, call *leaseCall, res lua.Result, t, deadline, boundary time.Duration, act *LeaseActivity) {
	gr := res.Counters[len(res.Counters)-1]
	now := res.Now.UnixMicro()
	k := now / s.width
	w := time.Duration(s.width) * time.Microsecond
	if cur := s.cur.Load(); cur != nil && cur.bucket == k && cur.limit == call.limit {
		cur.deadline.Store(max(cur.deadline.Load(), int64(deadline)))
	}
	nextDeadline := call.sent + time.Duration(float64(gr.BucketLeft+w-time.Microsecond)/(1+m.drift))
	nextBoundary := t + time.Duration(float64(gr.BucketLeft+w)/(1-m.drift)) + time.Microsecond
	g := gr.Amount
	if g > 0 {
		act.Grants++
		act.Granted += uint64(g)
		if old := s.next.Load(); old != nil {
			m.retire(s, old) // not expected: one lease ahead at a time
		}
		next := &lease{limit: call.limit, bucket: k + 1, width: s.width, n: s.n, boundary: nextBoundary, start: int64(boundary)}
		next.deadline.Store(int64(nextDeadline))
		next.add(g)
		m.spendable(s, next, gr, now, t)
		s.next.Store(next)
	}
	if g < nearLimitGrant && g < call.ask {
		s.near, s.nearUntil = true, nextBoundary
	}
}

// report tells the observer what lease calls did.
func (m *leaseManager) report(domain string, act LeaseActivity) {
	if m.observer != nil && act != (LeaseActivity{}) {
		m.observer.LeaseActivity(context.Background(), domain, act)
	}
}

// sweeper returns the leftovers of leases nobody renewed, and forgets idle
// slots, until Close.
func (m *leaseManager) sweeper() {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	lastEvict := m.clock()
	for {
		select {
		case <-m.quit:
			return
		case <-tick.C:
		}
		t := m.clock()
		m.sweep(t)
		if t-lastEvict >= evictEvery {
			m.evict(t)
			lastEvict = t
		}
	}
}

// sweep retires the leases whose bucket ended more than sweepGrace ago, or
// that no decision touched for idleLease, and sends the returns due, one call
// per counter.
func (m *leaseManager) sweep(t time.Duration) {
	m.held.Range(func(key, v any) bool {
		s := v.(*leaseSlot)
		if !s.busy.CompareAndSwap(false, true) {
			return true // a lease call is under way; it carries the returns
		}
		idle := t-time.Duration(s.seen.Load()) >= idleLease
		if cur := s.cur.Load(); cur != nil && (t >= cur.boundary+sweepGrace || idle) {
			m.retire(s, cur)
		}
		if next := s.next.Load(); next != nil && (t >= next.boundary+sweepGrace || idle) {
			m.retire(s, next)
		}
		m.promote(s, t)
		if !s.holds() {
			m.held.Delete(key)
			s.busy.Store(false)
			return true
		}
		if len(s.pending) == 0 {
			s.busy.Store(false)
			return true
		}
		m.start(s, t, 0, 0, false)
		return true
	})
}

// evict forgets slots that hold nothing and saw no decision for idleSlot.
func (m *leaseManager) evict(t time.Duration) {
	m.slots.Range(func(key, v any) bool {
		s := v.(*leaseSlot)
		if t-time.Duration(s.seen.Load()) < idleSlot || !s.busy.CompareAndSwap(false, true) {
			return true
		}
		if !s.holds() {
			m.slots.Delete(key)
			m.nslots.Add(-1)
		}
		s.busy.Store(false)
		return true
	})
}

// close stops new lease calls and the sweeper, waits for the calls under
// way, and returns every lease, bounded by ctx.
func (m *leaseManager) close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	close(m.quit)
	m.wg.Wait()
	m.inflight.Wait()
	t := m.clock()
	var errs []error
	m.held.Range(func(key, v any) bool {
		s := v.(*leaseSlot)
		if !s.busy.CompareAndSwap(false, true) {
			return true
		}
		if cur := s.cur.Load(); cur != nil {
			m.retire(s, cur)
		}
		if next := s.next.Load(); next != nil {
			m.retire(s, next)
		}
		call := m.prepare(s, t, 0, 0, false)
		if call == nil {
			s.busy.Store(false)
			return true
		}
		call.sent = m.clock()
		res, err := m.call(ctx, call.counters)
		if err != nil {
			errs = append(errs, err)
		}
		m.finish(call, res, err)
		return true
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}
