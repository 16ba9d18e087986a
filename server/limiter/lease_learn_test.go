package limiter

import (
	"testing"
	"time"

	"github.com/sluice-rl/sluice/lua"
)

// TestLearnSeesWhatRedisHasFree checks that a direct decision's answer
// reaches the lease of its counter, whether learn is handed the slots take
// found or looks them up itself, and only the lease of the limit it was
// granted under.
func TestLearnSeesWhatRedisHasFree(t *testing.T) {
	p := &plan{
		counters: []lua.Counter{{Key: "a", Limit: 100}, {Key: "b", Limit: 100}, {Key: "c", Limit: 100}},
		leasable: []bool{true, true, false},
	}
	res := lua.Result{Now: time.UnixMicro(5_000), Counters: []lua.CounterResult{{Remaining: 42}, {Remaining: 7}, {Remaining: 1}}}
	for _, handed := range []bool{true, false} {
		m := &leaseManager{}
		var slots []*leaseSlot
		var leases []*lease
		for i, c := range p.counters {
			s := &leaseSlot{key: c.Key}
			limit := c.Limit
			if i == 1 {
				limit = 200 // granted under another limit: not this decision's
			}
			ls := &lease{limit: limit}
			s.cur.Store(ls)
			m.slots.Store(c.Key, s)
			slots, leases = append(slots, s), append(leases, ls)
		}
		if !handed {
			slots = nil
		}
		m.learn(p, slots, res)
		want := []*freeAt{{42, 5_000}, nil, nil}
		for i, ls := range leases {
			got := ls.free.Load()
			if (got == nil) != (want[i] == nil) || got != nil && *got != *want[i] {
				t.Errorf("slots handed %v: counter %d lease saw %+v, want %+v", handed, i, got, want[i])
			}
		}
	}
}
