package limiter

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

func TestSlotTags(t *testing.T) {
	tags := slotTags()
	for s, tag := range tags {
		if hashSlot("x{"+tag+"}y") != s || len(tag) > 8 {
			t.Fatalf("slot tag %q of slot %d lands in %d", tag, s, hashSlot(tag))
		}
	}
}

func TestReservationIDs(t *testing.T) {
	plain := newReservationID(nil)
	if len(plain) != 32 || !validReservationID(plain) {
		t.Fatalf("plain id %q", plain)
	}
	id := newReservationID([]int{0, 77, 16383})
	slots, ok := parseReservationID(id)
	if !ok || !slices.Equal(slots, []int{0, 77, 16383}) || !strings.HasPrefix(id, id[:32]+".0.77.16383") {
		t.Fatalf("cluster id %q parsed as %v %v", id, slots, ok)
	}
	l := &Limiter{prefix: "p:"}
	for i, key := range l.recordKeys(id) {
		if hashSlot(key) != slots[i] || !strings.HasSuffix(key, ":res:"+id[:32]) || !strings.HasPrefix(key, "p:{") {
			t.Errorf("record key %q for slot %d lands in %d", key, slots[i], hashSlot(key))
		}
	}
	if keys := l.recordKeys(plain); len(keys) != 1 || keys[0] != "p:res:"+plain {
		t.Errorf("plain record keys %v", keys)
	}
	var many []int
	for s := range MaxDescriptors {
		many = append(many, 16383-MaxDescriptors+s)
	}
	if long := newReservationID(many); !validReservationID(long) {
		t.Errorf("id with %d slots rejected (%d chars)", len(many), len(long))
	}
	hex := plain
	for _, bad := range []string{
		"", hex[:31], hex + "0", strings.ToUpper(hex), hex + ".", hex + ".16384", hex + ".01", hex + ".5.5",
		hex + ".7.3", hex + "..3", hex + ".-1", hex + ".1x", hex + ".3.", hex + "." + strings.Repeat("1", 6),
		hex + strings.Repeat(".1", 2), "zz" + hex[2:],
	} {
		if validReservationID(bad) {
			t.Errorf("validReservationID(%q) = true", bad)
		}
	}
	var small []int
	for s := range MaxDescriptors + 1 {
		small = append(small, s)
	}
	if validReservationID(newReservationID(small)) {
		t.Error("an id with more slots than descriptors is accepted")
	}
	if !validReservationID(newReservationID(small[:MaxDescriptors])) {
		t.Error("an id with a slot per descriptor is rejected")
	}
}

// splitConfig has limits on several descriptors, which land in different
// slots, including a shadow one and token limits.
const splitConfig = `
domain: d
descriptors:
  - key: a
    rate_limits:
      - {window: 10s, requests: 7}
      - {window: 1m, requests: 15, buckets: 6}
  - key: b
    rate_limit: {window: 10s, requests: 5}
  - key: c
    shadow_mode: true
    rate_limit: {window: 10s, requests: 2}
  - key: t
    rate_limit: {window: 10s, requests: 40}
    token_limits:
      - {window: 1m, total_tokens: 1000, prompt_tokens: 600}
`

// TestSplitCallsAnswerAsOneScriptWould drives a limiter that splits calls
// by slot and one that does not, each on its own miniredis at the same
// pinned times, with the same random calls, reservations and reports, and
// checks every answer and the final usage are the same.
func TestSplitCallsAnswerAsOneScriptWould(t *testing.T) {
	one, mr1 := newTestLimiter(t, splitConfig)
	split, mr2 := newTestLimiter(t, splitConfig)
	split.prefix = one.prefix
	split.SetCluster(true)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2025, 7, 4, 12, 0, 0, 0, time.UTC)
	values := []string{"x", "y", "z"}
	keys := []string{"a", "b", "c", "t"}
	descs := func() []Descriptor {
		var ds []Descriptor
		for range 1 + rng.IntN(3) {
			ds = append(ds, desc(keys[rng.IntN(len(keys))], values[rng.IntN(len(values))]))
		}
		return ds
	}
	slotsSeen := map[int]bool{}
	type pair struct{ one, split string }
	var reservations []pair
	ctx := context.Background()
	multi, refusedMulti := 0, 0
	for step := range 600 {
		now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
		mr1.SetTime(now)
		mr2.SetTime(now)
		if rng.IntN(5) == 0 && len(reservations) > 0 {
			r := reservations[rng.IntN(len(reservations))]
			u := Usage{Prompt: uint64(rng.IntN(300)), Completion: uint64(rng.IntN(300))}
			a, errA := one.Report(ctx, &ReportRequest{ReservationID: r.one, Usage: u})
			b, errB := split.Report(ctx, &ReportRequest{ReservationID: r.split, Usage: u})
			if (errA == nil) != (errB == nil) {
				t.Fatalf("step %d: report errors differ: %v / %v", step, errA, errB)
			}
			if got, want := reportString(b), reportString(a); got != want {
				t.Fatalf("step %d: split report\n%s\nwant\n%s", step, got, want)
			}
			continue
		}
		req := Request{Domain: "d", Descriptors: descs(), Hits: uint64(1 + rng.IntN(3))}
		if rng.IntN(3) == 0 {
			req.Estimate = &Usage{Prompt: uint64(rng.IntN(200)), Completion: uint64(rng.IntN(200))}
		}
		p, _ := split.plan(&req)
		groups := slotGroups(p.counters)
		for _, g := range groups {
			slotsSeen[g.slot] = true
		}
		a, err := one.ShouldRateLimit(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := split.ShouldRateLimit(ctx, &req)
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) > 1 {
			multi++
			if a.Over {
				refusedMulti++
			}
		}
		if got, want := decisionString(b), decisionString(a); got != want {
			t.Fatalf("step %d (%d slots): split decision\n%s\nwant\n%s", step, len(groups), got, want)
		}
		if (a.ReservationID == "") != (b.ReservationID == "") {
			t.Fatalf("step %d: reservation ids %q / %q", step, a.ReservationID, b.ReservationID)
		}
		if a.ReservationID != "" {
			if _, ok := parseReservationID(b.ReservationID); !ok || len(b.ReservationID) == 32 {
				t.Fatalf("step %d: split reservation id %q", step, b.ReservationID)
			}
			reservations = append(reservations, pair{a.ReservationID, b.ReservationID})
		}
		// The usage of everything must agree after every step.
		all := Request{Domain: "d"}
		for _, k := range keys {
			for _, v := range values {
				all.Descriptors = append(all.Descriptors, desc(k, v))
			}
		}
		ua, err := one.Usage(ctx, &all)
		if err != nil {
			t.Fatal(err)
		}
		ub, err := split.Usage(ctx, &all)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := usageString(ub), usageString(ua); got != want {
			t.Fatalf("step %d: split usage\n%s\nwant\n%s", step, got, want)
		}
	}
	if len(slotsSeen) < 4 || multi < 100 || refusedMulti < 20 {
		t.Fatalf("the calls did not exercise splitting: %d slots, %d multi-slot calls, %d refused", len(slotsSeen), multi, refusedMulti)
	}
	t.Logf("%d slots, %d multi-slot calls, %d of them refused, %d reservations", len(slotsSeen), multi, refusedMulti, len(reservations))
}

func decisionString(d Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "over=%v cached=%v\n", d.Over, d.Cached)
	for i, s := range d.Statuses {
		fmt.Fprintf(&b, " %d over=%v shadow=%v rem=%d reset=%v retry=%v limit=%v\n", i, s.Over, s.Shadow, s.Remaining, s.ResetAfter, s.RetryAfter, limitName(s.Limit))
		for _, l := range s.Limits {
			fmt.Fprintf(&b, "   %s over=%v rem=%d charged=%d\n", limitName(l.Limit), l.Over, l.Remaining, l.Charged)
		}
	}
	return b.String()
}

func usageString(u []DescriptorUsage) string {
	var b strings.Builder
	for _, d := range u {
		fmt.Fprintf(&b, "%v:", d.Entries)
		for _, l := range d.Limits {
			fmt.Fprintf(&b, " %s used=%d rem=%d reserved=%d reset=%v", l.Limit.ID, l.Used, l.Remaining, l.Reserved, l.ResetAfter)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func limitName(l *config.Limit) string {
	if l == nil {
		return "-"
	}
	return l.ID
}

func reportString(r ReportResult) string {
	var lines []string
	for _, l := range r.Limits {
		lines = append(lines, fmt.Sprintf("%v %d/%v used=%d rem=%d", l.Kind, l.Amount, l.Window, l.Used, l.Remaining))
	}
	slices.Sort(lines)
	return fmt.Sprintf("repeated=%v direct=%v %v", r.Repeated, r.Direct, lines)
}

// TestSplitRefusalChargesNothingAnywhere: a call over three slots that one
// slot refuses leaves the others as they were, reservations included.
func TestSplitRefusalChargesNothingAnywhere(t *testing.T) {
	l, _ := newTestLimiter(t, splitConfig)
	l.SetCluster(true)
	ctx := context.Background()
	for range 5 {
		check(t, l, Request{Domain: "d", Descriptors: []Descriptor{desc("b", "x")}})
	}
	req := Request{Domain: "d", Descriptors: []Descriptor{desc("a", "x"), desc("t", "x"), desc("b", "x")}, Estimate: &Usage{Prompt: 100, Completion: 50}}
	p, _ := l.plan(&req)
	if n := len(slotGroups(p.counters)); n != 3 {
		t.Fatalf("the call spans %d slots, want 3", n)
	}
	dec := check(t, l, req)
	if !dec.Over || dec.ReservationID != "" || !dec.Statuses[2].Over || dec.Statuses[0].Over || dec.Statuses[1].Over {
		t.Fatalf("want only b over and no reservation: %s id=%q", decisionString(dec), dec.ReservationID)
	}
	if dec.Statuses[0].Remaining != 7 || dec.Statuses[1].Limits[1].Charged != 0 {
		t.Errorf("refused call reports a charge: %s", decisionString(dec))
	}
	u, err := l.Usage(ctx, &Request{Domain: "d", Descriptors: []Descriptor{desc("a", "x"), desc("t", "x")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range u {
		for _, lim := range d.Limits {
			if lim.Used != 0 || lim.Reserved != 0 {
				t.Errorf("%s: used %d reserved %d after a refused call, want 0", lim.Limit.ID, lim.Used, lim.Reserved)
			}
		}
	}
	// Without b the same call goes through, reserving on t's slot only.
	req.Descriptors = req.Descriptors[:2]
	dec = check(t, l, req)
	if dec.Over || dec.ReservationID == "" {
		t.Fatalf("call refused: %s", decisionString(dec))
	}
	slots, _ := parseReservationID(dec.ReservationID)
	if len(slots) != 1 || slots[0] != hashSlot(p.counters[slices.IndexFunc(p.counters, func(c lua.Counter) bool { return c.Op == lua.OpReserve })].Key) {
		t.Errorf("reservation %q: want one record, in the token counters' slot", dec.ReservationID)
	}
	rep, err := l.Report(ctx, &ReportRequest{ReservationID: dec.ReservationID, Usage: Usage{Prompt: 10, Completion: 5}})
	if err != nil || rep.Repeated || len(rep.Limits) != 2 {
		t.Fatalf("report: %+v, %v", rep, err)
	}
	again, err := l.Report(ctx, &ReportRequest{ReservationID: dec.ReservationID, Usage: Usage{Prompt: 99}})
	if err != nil || !again.Repeated || reportString(again) != strings.Replace(reportString(rep), "repeated=false", "repeated=true", 1) {
		t.Fatalf("second report: %+v, %v; want the first answer repeated", again, err)
	}
}
