package client

import "sync/atomic"

// Stats are the client's counters since New. Publish them with expvar, e.g.
// expvar.Publish("sluice", expvar.Func(func() any { return c.Stats() })).
type Stats struct {
	// Checks is the number of Check calls.
	Checks uint64
	// OverLimit counts checks Sluice refused.
	OverLimit uint64
	// Errors counts checks Sluice did not answer (after retries).
	Errors uint64
	// FailedOpen counts checks admitted because Sluice did not answer.
	FailedOpen uint64
	// FailedClosed counts checks refused because Sluice did not answer.
	FailedClosed uint64
	// Retries counts Check retries after Unavailable.
	Retries uint64
	// ReportsQueued counts reports accepted onto the queue.
	ReportsQueued uint64
	// ReportsSent counts reports Sluice accepted.
	ReportsSent uint64
	// ReportsDropped counts reports refused because the queue was full or the
	// client closed.
	ReportsDropped uint64
	// ReportsLost counts reports given up after their retries, or refused by
	// Sluice.
	ReportsLost uint64
	// ReportRetries counts report retries.
	ReportRetries uint64
	// UsageMissing counts metered calls whose backend stated no usage: what
	// the Meter counted of the answer was reported instead (zero for an
	// error before any generation).
	UsageMissing uint64
}

type counters struct {
	checks, overLimit, errors, failedOpen, failedClosed, retries atomic.Uint64
	queued, sent, dropped, lost, reportRetries, usageMissing     atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Checks:         c.checks.Load(),
		OverLimit:      c.overLimit.Load(),
		Errors:         c.errors.Load(),
		FailedOpen:     c.failedOpen.Load(),
		FailedClosed:   c.failedClosed.Load(),
		Retries:        c.retries.Load(),
		ReportsQueued:  c.queued.Load(),
		ReportsSent:    c.sent.Load(),
		ReportsDropped: c.dropped.Load(),
		ReportsLost:    c.lost.Load(),
		ReportRetries:  c.reportRetries.Load(),
		UsageMissing:   c.usageMissing.Load(),
	}
}
