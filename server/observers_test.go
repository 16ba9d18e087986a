package server

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// leaseRecorder is an observer that also wants lease activity.
type leaseRecorder struct{ got []limiter.LeaseActivity }

func (*leaseRecorder) Decided(context.Context, *limiter.Request, []config.Rule, *limiter.Decision) {}
func (*leaseRecorder) Reported(context.Context, *limiter.ReportRequest, *limiter.ReportResult)     {}
func (*leaseRecorder) StoreCall(context.Context, string, time.Duration, error)                     {}
func (r *leaseRecorder) LeaseActivity(_ context.Context, _ string, a limiter.LeaseActivity) {
	r.got = append(r.got, a)
}

// The limiter finds its lease observer by a type assertion on the observer
// it is given: the server's list of observers must pass lease activity on,
// or sluice_lease_grants_total and sluice_lease_units_total never move.
func TestObserversPassLeaseActivityOn(t *testing.T) {
	rec := &leaseRecorder{}
	var o limiter.Observer = observers{rec}
	lo, ok := o.(limiter.LeaseObserver)
	if !ok {
		t.Fatal("observers is not a limiter.LeaseObserver")
	}
	lo.LeaseActivity(context.Background(), "d", limiter.LeaseActivity{Grants: 1})
	if len(rec.got) != 1 || rec.got[0].Grants != 1 {
		t.Fatalf("recorded %+v", rec.got)
	}
}
