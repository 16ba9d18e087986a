package telemetry

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// The decision counters are tallies read at collection: every decision must
// show, from many goroutines at once and for label sets beyond the cache's
// copy-on-write part (which then go to its overflow map, built once).
func TestDecisionCountsAreExactPastTheCacheAndUnderConcurrency(t *testing.T) {
	old := maxCached
	maxCached = 3
	t.Cleanup(func() { maxCached = old })
	tel := newTestTelemetry(t)
	ctx := context.Background()
	const descriptors, goroutines, each = 8, 4, 250
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				d := (g + i) % descriptors
				stat := fmt.Sprintf("apim.api_A%d", d)
				req := &limiter.Request{Domain: "apim", Descriptors: []limiter.Descriptor{{Entries: []config.Entry{{Key: "api", Value: fmt.Sprintf("A%d", d)}}}}}
				rules := []config.Rule{{Stat: stat, Limits: []config.Limit{minuteLimit}}}
				tel.Decided(ctx, req, rules, &limiter.Decision{Leased: true, Over: i%5 == 0,
					Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Over: i%5 == 0, Remaining: 9}}})
			}
		})
	}
	wg.Wait()

	got := gathered(t, tel)
	total, over := 0.0, 0.0
	for d := range descriptors {
		labels := fmt.Sprintf("descriptor=apim.api_A%d,domain=apim,limit=%s", d, minuteLimit.ID)
		total += got["sluice_decisions_total{code=ok,"+labels+"}"] + got["sluice_decisions_total{code=over_limit,"+labels+"}"]
		over += got["sluice_decisions_total{code=over_limit,"+labels+"}"]
	}
	if want := float64(goroutines * each); total != want {
		t.Errorf("sluice_decisions_total sums to %v over the %d descriptors, want %v", total, descriptors, want)
	}
	if want := float64(goroutines * each / 5); over != want {
		t.Errorf("over_limit decisions %v, want %v", over, want)
	}
	if g, want := got["sluice_lease_decisions_total{domain=apim}"], float64(goroutines*each); g != want {
		t.Errorf("sluice_lease_decisions_total = %v, want %v", g, want)
	}
	if n := len(tel.decisions.all); n != 2*descriptors {
		t.Errorf("%d decision series made for %d descriptors × 2 codes: each label set must be built once", n, descriptors)
	}
}
