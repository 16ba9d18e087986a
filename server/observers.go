package server

import (
	"context"
	"time"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// observers tells several limiter observers, in order, what the limiter does.
type observers []limiter.Observer

func (os observers) Decided(ctx context.Context, req *limiter.Request, rules []config.Rule, dec *limiter.Decision) {
	for _, o := range os {
		o.Decided(ctx, req, rules, dec)
	}
}

func (os observers) Reported(ctx context.Context, req *limiter.ReportRequest, res *limiter.ReportResult) {
	for _, o := range os {
		o.Reported(ctx, req, res)
	}
}

func (os observers) StoreCall(ctx context.Context, script string, took time.Duration, err error) {
	for _, o := range os {
		o.StoreCall(ctx, script, took, err)
	}
}

func (os observers) CircuitOpened() {
	for _, o := range os {
		if co, ok := o.(limiter.CircuitObserver); ok {
			co.CircuitOpened()
		}
	}
}

func (os observers) LeaseActivity(ctx context.Context, domain string, a limiter.LeaseActivity) {
	for _, o := range os {
		if lo, ok := o.(limiter.LeaseObserver); ok {
			lo.LeaseActivity(ctx, domain, a)
		}
	}
}
