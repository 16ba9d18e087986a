package limiter

// How a call runs on Redis Cluster
//
// One script call may only touch keys of one hash slot. The keys of one
// descriptor share a hash tag (see counterKey), so they always do; the
// counters of a call with several descriptors may not. On a cluster the
// limiter groups a call's counters by slot: one group (the common case) is
// still one script call; several run one script call per slot, in parallel.
// If any slot refuses, the slots that charged give it back (rollback), so the
// call charges nothing anywhere — all or nothing holds, and the answer is
// what one script call over all counters would have given. A refusal comes
// only from an enforced counter (a shadow counter never refuses a call), so
// a shadow-only "over" charges as usual.
//
// Rollback of one slot is exact for reserved tokens (report.lua with no
// usage takes each reservation out of the very bucket it went into) and for
// other charges (OpRefund from the bucket the charge went into, which the
// script's answer names; nothing once that bucket has left the window). A
// refused call's answer then comes from the refusing slot's script, the
// rolled-back slots' scripts and a peek of those slots (for how long until
// their counts age out), so it is what one script would have said. When a
// slot fails (Redis error, deadline), the caller gets the store error at once
// and the other slots are rolled back in the background, bounded by
// rollbackTimeout.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sluice-rl/sluice/lua"
)

// rollbackTimeout bounds a background rollback after a failed slot.
const rollbackTimeout = time.Second

// clusterScripter is a Scripter that knows whether it talks to a cluster
// (store.Batcher).
type clusterScripter interface{ Cluster() bool }

// isCluster reports whether rdb talks to a Redis Cluster.
func isCluster(rdb redis.Scripter) bool {
	switch r := rdb.(type) {
	case *redis.ClusterClient:
		return true
	case clusterScripter:
		return r.Cluster()
	}
	return false
}

// SetCluster makes the limiter split calls by hash slot (true) or send every
// call as one script (false). New sets it from the Scripter: a
// *redis.ClusterClient, or a Scripter whose Cluster method reports true.
// Splitting on a single node works too (tests use it); it only costs more
// calls.
func (l *Limiter) SetCluster(on bool) { l.cluster = on }

// slotGroup is the counters of one call that live in one hash slot.
type slotGroup struct {
	slot int
	idx  []int // indices into the call's counters, ascending
	// reserves is true when a counter of the group is an OpReserve: the
	// group writes a reservation record.
	reserves bool
}

// slotGroups groups counters by hash slot, slots ascending.
func slotGroups(counters []lua.Counter) []slotGroup {
	var groups []slotGroup
	for i := range counters {
		s := hashSlot(counters[i].Key)
		j := slices.IndexFunc(groups, func(g slotGroup) bool { return g.slot == s })
		if j < 0 {
			groups = append(groups, slotGroup{slot: s})
			j = len(groups) - 1
		}
		groups[j].idx = append(groups[j].idx, i)
		if counters[i].Op == lua.OpReserve {
			groups[j].reserves = true
		}
	}
	slices.SortFunc(groups, func(a, b slotGroup) int { return a.slot - b.slot })
	return groups
}

// subset copies the counters of g.
func (g *slotGroup) subset(counters []lua.Counter) []lua.Counter {
	out := make([]lua.Counter, len(g.idx))
	for i, j := range g.idx {
		out[i] = counters[j]
	}
	return out
}

// decide charges the plan's counters — one script call, or one per slot on a
// cluster — and returns the result over all counters and, when the plan
// reserves, the reservation id (meaningful only when the call was allowed).
func (l *Limiter) decide(ctx context.Context, p *plan) (lua.Result, string, error) {
	ttl := p.longest + l.grace
	if !l.cluster {
		if !p.reserves {
			res, err := l.window.Run(ctx, l.rdb, lua.Charge, p.counters)
			return res, "", err
		}
		id := newReservationID(nil)
		res, err := l.window.Reserve(ctx, l.rdb, p.counters, l.recordKey(id), ttl)
		return res, id, err
	}

	groups := slotGroups(p.counters)
	var id string
	if p.reserves {
		var slots []int
		for _, g := range groups {
			if g.reserves {
				slots = append(slots, g.slot)
			}
		}
		id = newReservationID(slots)
	}
	run := func(ctx context.Context, g *slotGroup, counters []lua.Counter) (lua.Result, error) {
		if !g.reserves {
			return l.window.Run(ctx, l.rdb, lua.Charge, counters)
		}
		key, err := l.groupRecordKey(id, g.slot)
		if err != nil {
			return lua.Result{}, err
		}
		return l.window.Reserve(ctx, l.rdb, counters, key, ttl)
	}
	if len(groups) == 1 {
		res, err := run(ctx, &groups[0], p.counters)
		return res, id, err
	}

	results, errs := l.parallel(ctx, groups, p.counters, run)
	var firstErr error
	allowed := true
	for i := range groups {
		if errs[i] != nil {
			firstErr = errs[i]
		} else if !results[i].Allowed {
			allowed = false
		}
	}
	if firstErr != nil {
		// Nothing is known to be decided: give back what the other slots
		// charged, without making the caller wait for it.
		bg := context.WithoutCancel(ctx)
		go func() {
			ctx, cancel := context.WithTimeout(bg, rollbackTimeout)
			defer cancel()
			for i := range groups {
				if errs[i] == nil && results[i].Allowed {
					_ = l.rollback(ctx, p.counters, &groups[i], results[i], id)
				}
			}
		}()
		return lua.Result{}, "", firstErr
	}
	if !allowed {
		// Refused: the slots that charged give it back, in parallel, and
		// report the state before their charge, as one script would have.
		var wg sync.WaitGroup
		for i := range groups {
			if results[i].Allowed {
				wg.Go(func() {
					counters := groups[i].subset(p.counters)
					if l.rollback(ctx, p.counters, &groups[i], results[i], id) == nil {
						results[i] = l.uncharged(ctx, results[i], counters)
					} else {
						results[i] = uncharged(results[i], counters, nil)
					}
				})
			}
		}
		wg.Wait()
	}
	return merge(groups, results, len(p.counters)), id, nil
}

// groupRecordKey is the record key of slot in reservation id; it checks
// that the key really lands in slot (a key prefix with a '{' would move it).
func (l *Limiter) groupRecordKey(id string, slot int) (string, error) {
	key := l.slotRecordKey(id[:reservationIDLen], slot)
	if hashSlot(key) != slot {
		return "", fmt.Errorf("key prefix %q contains '{': on Redis Cluster the prefix must not contain braces", l.prefix)
	}
	return key, nil
}

// parallel runs fn for every group at once on its counters.
func (l *Limiter) parallel(ctx context.Context, groups []slotGroup, counters []lua.Counter,
	fn func(context.Context, *slotGroup, []lua.Counter) (lua.Result, error)) ([]lua.Result, []error) {
	results := make([]lua.Result, len(groups))
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i := range groups {
		wg.Go(func() { results[i], errs[i] = fn(ctx, &groups[i], groups[i].subset(counters)) })
	}
	wg.Wait()
	return results, errs
}

// runSplit runs a Window call in mode over counters, one script call per
// slot on a cluster (in parallel), for calls that cannot refuse: a peek, or
// charges that never refuse (OpForce).
func (l *Limiter) runSplit(ctx context.Context, mode lua.Mode, counters []lua.Counter) (lua.Result, error) {
	if !l.cluster {
		return l.window.Run(ctx, l.rdb, mode, counters)
	}
	groups := slotGroups(counters)
	if len(groups) == 1 {
		return l.window.Run(ctx, l.rdb, mode, counters)
	}
	results, errs := l.parallel(ctx, groups, counters, func(ctx context.Context, _ *slotGroup, cs []lua.Counter) (lua.Result, error) {
		return l.window.Run(ctx, l.rdb, mode, cs)
	})
	for _, err := range errs {
		if err != nil {
			return lua.Result{}, err
		}
	}
	return merge(groups, results, len(counters)), nil
}

// merge puts the results of the groups back in counter order. The call is
// allowed when every slot allowed it; its time is the latest slot's.
func merge(groups []slotGroup, results []lua.Result, n int) lua.Result {
	out := lua.Result{Allowed: true, Counters: make([]lua.CounterResult, n)}
	for i, g := range groups {
		r := results[i]
		out.Allowed = out.Allowed && r.Allowed
		if r.Now.After(out.Now) {
			out.Now = r.Now
		}
		for j, c := range g.idx {
			out.Counters[c] = r.Counters[j]
		}
	}
	return out
}

// uncharged turns the result of a slot that charged, and was rolled back,
// into what it would have answered had the call been refused there too:
// nothing charged. How long until everything counted ages out depends on
// buckets the result does not show: a peek (cost 0, writes nothing) tells.
func (l *Limiter) uncharged(ctx context.Context, r lua.Result, counters []lua.Counter) lua.Result {
	peek := make([]lua.Counter, len(counters))
	for i, c := range counters {
		c.Cost, c.Op = 0, lua.OpCheck
		peek[i] = c
	}
	if after, err := l.window.Run(ctx, l.rdb, lua.Peek, peek); err == nil {
		return uncharged(r, counters, &after)
	}
	return uncharged(r, counters, nil)
}

// uncharged is the arithmetic of (*Limiter).uncharged; without a peek the
// reset stays the one after the charge, which is at least the true one.
func uncharged(r lua.Result, counters []lua.Counter, peek *lua.Result) lua.Result {
	r.Allowed = false
	for i := range r.Counters {
		c := &r.Counters[i]
		if peek != nil {
			c.ResetAfter = peek.Counters[i].ResetAfter
		}
		used := int64(c.Used) - c.Amount
		c.Used = uint64(max(used, 0))
		c.Remaining = 0
		if counters[i].Limit > c.Used {
			c.Remaining = counters[i].Limit - c.Used
		}
		c.Amount = 0
	}
	return r
}

// rollback gives back what group g charged in a call that is not going
// ahead: its reservations through the report script with no usage (out of
// the very bucket they went into, and out of <key>:rsv), every other charge
// with OpRefund (and a refund given back with OpForce).
func (l *Limiter) rollback(ctx context.Context, counters []lua.Counter, g *slotGroup, res lua.Result, id string) error {
	var errs []error
	if g.reserves {
		key, err := l.groupRecordKey(id, g.slot)
		if err == nil {
			_, err = l.report.Run(ctx, l.rdb, key, lua.Actual{})
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// Undo per key: one counter per key keeps the script's snapshot right.
	// A charge is given back out of the very bucket it went into.
	var undo []lua.Counter
	amounts := map[string]int64{}
	for j, c := range g.idx {
		k := counters[c]
		if k.Op == lua.OpReserve || res.Counters[j].Amount == 0 {
			continue
		}
		if _, ok := amounts[k.Key]; !ok {
			k.From = lua.ChargedBucket(res, k, res.Counters[j])
			undo = append(undo, k)
		}
		amounts[k.Key] += res.Counters[j].Amount
	}
	var refunds []lua.Counter
	for _, k := range undo {
		a := amounts[k.Key]
		switch {
		case a > 0:
			k.Op, k.Cost = lua.OpRefund, uint64(a)
		case a < 0:
			k.Op, k.Cost, k.From = lua.OpForce, uint64(-a), 0
		default:
			continue
		}
		k.Kind, k.Shadow = 0, true
		refunds = append(refunds, k)
	}
	if len(refunds) > 0 {
		if _, err := l.window.Run(ctx, l.rdb, lua.Charge, refunds); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("rollback of slot %d: %v", g.slot, errs)
	}
	return nil
}
