package limiter

import (
	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// Most calls carry one descriptor with one limit, and on the leased path the
// allocations of their per-descriptor and per-counter slices were most of the
// replica's own work. So a plan carries arrays big enough for such a call,
// and its slices start out in them: the call allocates the plan once instead
// of once per slice. A larger call's slices outgrow the arrays (append moves
// them), as before. The arrays belong to one call only — a plan is never
// reused — so nothing a Decision keeps can change under it.

// inlineDescriptors and inlineCounters are the room in a plan's own arrays
// (and in a decision's, see decision_space.go). Room for two counters made
// every plan about 200 bytes bigger, and BenchmarkLeasedDecision kept little
// of the gain: the allocator and the GC are paid by the byte as well as by
// the object.
const (
	inlineDescriptors = 1
	inlineCounters    = 1
)

// planSpace is the room a plan's slices start in.
type planSpace struct {
	rules    [inlineDescriptors]config.Rule
	flags    [2 * inlineDescriptors]bool // matched, then quota
	counters [inlineCounters]lua.Counter
	leasable [inlineCounters]bool
	uses     [inlineCounters]use
	// For the leaseTake of the plan (lease_take.go).
	leases  [inlineCounters]*lease
	slots   [inlineCounters]*leaseSlot
	results [inlineCounters]lua.CounterResult
}

// newPlan returns an empty plan for n descriptors: rules, matched and quota
// of length n (one allocation for the two flag slices when n is above the
// room), no counters yet.
func newPlan(n int) *plan {
	p := &plan{}
	s := &p.space
	if n <= inlineDescriptors {
		p.rules = s.rules[:n:n]
		p.matched, p.quota = s.flags[:n:n], s.flags[n:2*n:2*n]
	} else {
		p.rules = make([]config.Rule, n)
		flags := make([]bool, 2*n)
		p.matched, p.quota = flags[:n:n], flags[n:]
	}
	p.counters, p.leasable, p.uses = s.counters[:0], s.leasable[:0], s.uses[:0]
	return p
}

// zeroed returns n zero values, in room when they fit (a plan's arrays are
// used by one call only, but cleared anyway so that a second use could not
// see the first's).
func zeroed[T any](room []T, n int) []T {
	if n > len(room) {
		return make([]T, n)
	}
	clear(room[:n])
	return room[:n:n]
}
