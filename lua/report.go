package lua

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReportStatus says what a Report call found.
type ReportStatus int

const (
	// ReportNotFound: no such reservation (never made, or expired).
	ReportNotFound ReportStatus = 0
	// ReportReconciled: the reservation was reconciled by this call.
	ReportReconciled ReportStatus = 1
	// ReportRepeated: reported before; nothing changed, the first answer
	// is returned.
	ReportRepeated ReportStatus = 2
)

// Actual is what a call really used, indexed by token kind code (1..3).
type Actual [4]uint64

// ReportedCounter is the state of one reserved counter after a report.
type ReportedCounter struct {
	Kind      uint8
	Limit     uint64
	Window    time.Duration // n bucket widths: the counted span, at least the window
	Used      uint64
	Remaining uint64
}

// ReportResult is the answer of a Report call.
type ReportResult struct {
	Status   ReportStatus
	Counters []ReportedCounter
}

// Report runs report.lua. It is safe for concurrent use.
type Report struct {
	script *redis.Script
}

// NewReport returns the wrapper of the reconcile script that writes counters
// in layout.
func NewReport(layout Layout) *Report {
	return &Report{script: redis.NewScript(reportSource(layout))}
}

// Load sends the script to Redis with SCRIPT LOAD.
func (r *Report) Load(ctx context.Context, rdb redis.Scripter) error {
	if err := r.script.Load(ctx, rdb).Err(); err != nil {
		return fmt.Errorf("load report script: %w", err)
	}
	return nil
}

// Run reconciles the reservation under recordKey with the actual usage, in
// one script call: each reserved amount leaves its bucket if that bucket is
// still in the window, and the actual amount of the counter's kind is charged
// now, even past the limit.
func (r *Report) Run(ctx context.Context, rdb redis.Scripter, recordKey string, actual Actual) (ReportResult, error) {
	if recordKey == "" {
		return ReportResult{}, refused(errors.New("report: empty record key"))
	}
	for k, v := range actual {
		if v > maxExact {
			return ReportResult{}, refused(fmt.Errorf("report: kind %d amount %d is above 2^53-1", k, v))
		}
	}
	line := append(newEvalSha(r.script, 1, 4), recordKey, 1, actual[1], actual[2], actual[3]) // one report
	reply, err := runEvalSha(ctx, rdb, r.script, line).Result()
	if err != nil {
		return ReportResult{}, fmt.Errorf("report script: %w", err)
	}
	calls, ok := reply.([]any)
	if !ok || len(calls) != 1 {
		return ReportResult{}, fmt.Errorf("report script: reply is %T of %d, want an array of one report's reply", reply, len(calls))
	}
	if err, ok := calls[0].(error); ok {
		return ReportResult{}, fmt.Errorf("report script: %w", err)
	}
	return parseReportReply(calls[0])
}

// parseReportReply checks the reply's shape: {status, m, then 5 integers per counter}.
func parseReportReply(reply any) (ReportResult, error) {
	vals, ok := reply.([]any)
	if !ok || len(vals) < 2 {
		return ReportResult{}, fmt.Errorf("report script: reply is %T of %d values, want an array", reply, len(vals))
	}
	ints := make([]int64, len(vals))
	for i, v := range vals {
		n, ok := v.(int64)
		if !ok || n < 0 {
			return ReportResult{}, fmt.Errorf("report script: reply value %d is %v, want a non-negative integer", i, v)
		}
		ints[i] = n
	}
	status, m := ReportStatus(ints[0]), int(ints[1])
	if status > ReportRepeated {
		return ReportResult{}, fmt.Errorf("report script: status %d", status)
	}
	if len(ints) != 2+5*m {
		return ReportResult{}, fmt.Errorf("report script: reply has %d values for %d counters", len(ints), m)
	}
	res := ReportResult{Status: status, Counters: make([]ReportedCounter, m)}
	for i := range res.Counters {
		f := ints[2+5*i:]
		if f[0] > 255 {
			return ReportResult{}, fmt.Errorf("report script: counter %d kind %d", i, f[0])
		}
		res.Counters[i] = ReportedCounter{
			Kind: uint8(f[0]), Limit: uint64(f[1]), Window: time.Duration(f[2]) * time.Microsecond,
			Used: uint64(f[3]), Remaining: uint64(f[4]),
		}
	}
	return res, nil
}
