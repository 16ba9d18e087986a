package limiter

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluice-rl/sluice/lua"
	"github.com/sluice-rl/sluice/server/config"
)

// ReportRequest tells what an admitted call really used: by its reservation,
// or — without one, or when it is unknown — by domain and descriptors.
type ReportRequest struct {
	ReservationID string
	Usage         Usage
	Domain        string
	Descriptors   []Descriptor
}

// ReportedLimit is the state of one token limit after a report.
type ReportedLimit struct {
	Kind config.Kind
	// Limit is the configured limit when the report went by descriptors;
	// nil when it went by reservation (the record keeps only the numbers).
	Limit     *config.Limit
	Amount    uint64 // the limit's amount per window
	Window    time.Duration
	Used      uint64
	Remaining uint64
}

// ReportResult is the answer to a report.
type ReportResult struct {
	Limits []ReportedLimit
	// Direct is true when the usage was charged by descriptors.
	Direct bool
	// Repeated is true when the reservation was reported before: nothing
	// changed and the first answer is returned.
	Repeated bool
}

// NotFoundError is a report of a reservation that does not exist (never
// made, or expired) and that carries no descriptors to fall back on.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string {
	return "reservation_id: no reservation " + e.ID + " (unknown or expired); send domain and descriptors to charge the usage directly"
}

// Report reconciles a reservation with actual usage in one script call (on
// Redis Cluster one per record, that is per slot the reservation touched,
// in parallel): the reservation leaves its bucket (if still in the window)
// and the actual usage is charged now, even past the limit. A second report
// of the same reservation changes nothing and answers as the first did.
func (l *Limiter) Report(ctx context.Context, req *ReportRequest) (ReportResult, error) {
	if err := req.validate(&l.bounds); err != nil {
		return ReportResult{}, err
	}
	if req.ReservationID != "" {
		actual := lua.Actual{}
		for _, k := range []config.Kind{config.KindTotalTokens, config.KindPromptTokens, config.KindCompletionTokens} {
			actual[tokenCode(k)] = req.Usage.of(k)
		}
		var res lua.ReportResult
		if err := l.storeCall(ctx, "report", func(ctx context.Context) (err error) {
			res, err = l.reportRecords(ctx, l.recordKeys(req.ReservationID), actual)
			return err
		}); err != nil {
			return ReportResult{}, err
		}
		if res.Status != lua.ReportNotFound {
			out := ReportResult{Limits: make([]ReportedLimit, len(res.Counters))}
			for i, c := range res.Counters {
				out.Limits[i] = ReportedLimit{
					Kind: kindOfCode(c.Kind), Amount: c.Limit, Window: c.Window, Used: c.Used, Remaining: c.Remaining,
				}
			}
			out.Repeated = res.Status == lua.ReportRepeated
			l.observeReport(ctx, req, &out)
			return out, nil
		}
		if len(req.Descriptors) == 0 {
			return ReportResult{}, &NotFoundError{ID: req.ReservationID}
		}
	}
	out, err := l.chargeUsage(ctx, req)
	if err == nil {
		l.observeReport(ctx, req, &out)
	}
	return out, err
}

func (l *Limiter) observeReport(ctx context.Context, req *ReportRequest, res *ReportResult) {
	if l.observer != nil {
		l.observer.Reported(ctx, req, res)
	}
}

// chargeUsage charges usage to the token limits the descriptors match, even
// past the limit: the tokens are spent already.
func (l *Limiter) chargeUsage(ctx context.Context, req *ReportRequest) (ReportResult, error) {
	usage := req.Usage
	p, _ := l.plan(&Request{Domain: req.Domain, Descriptors: req.Descriptors})
	out := ReportResult{Direct: true}
	var counters []lua.Counter
	var limits []*config.Limit
	seen := make(map[int]bool, len(p.uses))
	for _, u := range p.uses {
		if !u.limit.Kind.IsTokens() || seen[u.counter] {
			continue // two descriptors naming one counter charge it once
		}
		seen[u.counter] = true
		c := p.counters[u.counter]
		c.Cost, c.Op = usage.of(u.limit.Kind), lua.OpForce
		counters = append(counters, c)
		limits = append(limits, u.limit)
	}
	if len(counters) == 0 {
		return out, nil
	}
	var res lua.Result
	if err := l.storeCall(ctx, "window", func(ctx context.Context) (err error) {
		res, err = l.runSplit(ctx, lua.Charge, counters)
		return err
	}); err != nil {
		return ReportResult{}, err
	}
	for i, c := range res.Counters {
		lim := limits[i]
		out.Limits = append(out.Limits, ReportedLimit{
			Kind: lim.Kind, Limit: lim, Amount: lim.Requests, Window: lim.Window, Used: c.Used, Remaining: c.Remaining,
		})
	}
	return out, nil
}

// validate checks a report before anything is charged.
func (r *ReportRequest) validate(b *Bounds) error {
	if err := r.Usage.validate("usage"); err != nil {
		return err
	}
	if r.ReservationID != "" && !validReservationID(r.ReservationID) {
		return invalid("reservation_id", "malformed: want the id ShouldRateLimit returned (%d hex characters, on Redis Cluster followed by .<slot> parts; at most %d characters)", reservationIDLen, maxReservationIDLen)
	}
	if r.ReservationID == "" && r.Domain == "" && len(r.Descriptors) == 0 {
		return invalid("reservation_id", "required (or domain and descriptors to charge directly)")
	}
	if r.Domain != "" || len(r.Descriptors) > 0 {
		req := Request{Domain: r.Domain, Descriptors: r.Descriptors}
		return req.validate(b)
	}
	return nil
}

// reportRecords runs the report script on every record of a reservation, in
// parallel when there are several, and joins their answers in record order:
// reconciled when any record was reconciled now, repeated when every record
// found was reported before, not found when none was found.
func (l *Limiter) reportRecords(ctx context.Context, keys []string, actual lua.Actual) (lua.ReportResult, error) {
	if len(keys) == 1 {
		return l.report.Run(ctx, l.rdb, keys[0], actual)
	}
	results := make([]lua.ReportResult, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, key := range keys {
		wg.Go(func() { results[i], errs[i] = l.report.Run(ctx, l.rdb, key, actual) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return lua.ReportResult{}, err
	}
	out := lua.ReportResult{Status: lua.ReportNotFound}
	for _, r := range results {
		switch {
		case r.Status == lua.ReportReconciled:
			out.Status = lua.ReportReconciled
		case r.Status == lua.ReportRepeated && out.Status == lua.ReportNotFound:
			out.Status = lua.ReportRepeated
		}
		out.Counters = append(out.Counters, r.Counters...)
	}
	return out, nil
}
