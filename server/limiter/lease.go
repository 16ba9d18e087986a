package limiter

import (
	"math"
	"sync/atomic"
	"time"
)

// lease is one quota lease: units of one counter that Redis charged into one
// bucket for this replica, spent here from memory until a deadline on the
// replica's monotonic clock (docs/leases.md). Decisions take units with a
// compare-and-swap; retire takes whatever is left in one swap, after which
// nobody can take any more, so every unit is either spent by exactly one
// decision or handed to exactly one return.
type lease struct {
	limit  uint64 // the limit it was granted under: it serves only that limit
	bucket int64  // k, the bucket its units were charged into
	width  int64  // bucket width, µs
	n      int64  // previous buckets counted

	// start is the clock ns from which it may be spent: math.MinInt64 for a
	// lease of the bucket Redis was in at its grant (clock readings may be
	// negative in tests); for a lease granted ahead into the next bucket,
	// the reading after which Redis has surely entered it.
	start int64

	left     atomic.Int64           // units not spent; < 0 once retired
	deadline atomic.Int64           // clock ns: spend only at readings before it
	aheadAt  atomic.Int64           // clock ns: from then on, lease the next bucket ahead
	low      atomic.Int64           // ask for more when left falls below this
	free     atomic.Pointer[freeAt] // what Redis had free at the latest answer seen
	redisAt  atomic.Int64           // Redis TIME of the latest grant, µs
	recvAt   atomic.Int64           // clock ns when that grant's reply arrived

	// Guarded by the slot's busy flag (only one lease call at a time).
	granted  int64         // units of this lease that Redis charged, as far as we know
	boundary time.Duration // clock reading after which Redis has certainly left bucket k
}

// credit adds units this replica gives back (a retired lease's leftover) to
// what Redis had free at the latest answer seen.
func (ls *lease) credit(units int64) {
	for {
		old := ls.free.Load()
		if old == nil {
			return
		}
		if ls.free.CompareAndSwap(old, &freeAt{old.free + units, old.at}) {
			return
		}
	}
}

// freeAt is what Redis had free on a counter at one Redis instant.
type freeAt struct{ free, at int64 } // units, µs

// see keeps what Redis had free at Redis instant at (µs), unless the lease
// already knows a later answer (replies of concurrent calls arrive in any
// order); of two answers of one instant (one script call), the smaller.
func (ls *lease) see(free, at int64) {
	next := &freeAt{free, at}
	for {
		old := ls.free.Load()
		if old != nil && (old.at > at || old.at == at && old.free <= free) {
			return
		}
		if ls.free.CompareAndSwap(old, next) {
			return
		}
	}
}

// retiredMark is what retire leaves in left: far enough below zero that no
// give-back can bring it back.
const retiredMark = math.MinInt64 / 2

// take spends units from the lease, or reports false when it holds fewer.
// The caller checks the deadline.
func (ls *lease) take(units int64) bool {
	for {
		v := ls.left.Load()
		if v < units {
			return false
		}
		if ls.left.CompareAndSwap(v, v-units) {
			return true
		}
	}
}

// giveBack puts back units that a decision took but did not use (Redis
// refused or failed its other counters). It reports false when the lease was
// retired meanwhile: those units then stay counted in Redis, unspent.
func (ls *lease) giveBack(units int64) bool {
	for {
		v := ls.left.Load()
		if v < 0 {
			return false
		}
		if ls.left.CompareAndSwap(v, v+units) {
			return true
		}
	}
}

// add puts the units of a further grant into the same bucket into the lease.
// Only the slot's lease call does it, and only on a lease not retired.
func (ls *lease) add(units int64) {
	ls.left.Add(units)
	ls.granted += units
}

// retire stops all spending and returns what was left; ok is false when the
// lease had been retired already.
func (ls *lease) retire() (leftover int64, ok bool) {
	v := ls.left.Swap(retiredMark)
	if v < 0 {
		return 0, false
	}
	return v, true
}

// usable reports whether a decision at clock reading t may spend from the
// lease for a counter of this limit.
func (ls *lease) usable(limit uint64, t time.Duration) bool {
	return ls.limit == limit && int64(t) >= ls.start && int64(t) < ls.deadline.Load()
}

// estimate is what a decision answered from the lease at clock reading t
// reports for its counter: what Redis had free at the latest grant plus what
// the lease still holds (exact while no other replica charges the counter),
// and the time until everything counted has aged out, from the lease's
// bucket and Redis' clock as estimated from the latest grant.
func (ls *lease) estimate(t time.Duration) (remaining uint64, reset time.Duration) {
	var rem int64
	if f := ls.free.Load(); f != nil {
		rem = f.free
	}
	rem += max(ls.left.Load(), 0)
	redisNow := ls.redisAt.Load() + (int64(t)-ls.recvAt.Load())/int64(time.Microsecond)
	end := (ls.bucket + ls.n + 1) * ls.width
	return uint64(min(max(rem, 0), int64(ls.limit))), time.Duration(max(end-redisNow, 0)) * time.Microsecond
}
