// Package logthrottle lets through at most one log record per interval of a
// kind that repeats — a Redis outage fails every call and every dial — and
// counts the others, so that the next record can say how many it stands for.
package logthrottle

import (
	"sync/atomic"
	"time"
)

// Throttle admits one record per Every. The zero Throttle admits one a
// second. It is safe for concurrent use.
type Throttle struct {
	Every      time.Duration
	last       atomic.Int64 // unix nanoseconds of the last record let through
	suppressed atomic.Int64
}

// Allow reports whether a record may be logged at now; when it may,
// suppressed is how many were refused since the last one let through.
func (t *Throttle) Allow(now time.Time) (ok bool, suppressed int64) {
	every := t.Every
	if every <= 0 {
		every = time.Second
	}
	n := now.UnixNano()
	last := t.last.Load()
	if (last != 0 && n-last < int64(every)) || !t.last.CompareAndSwap(last, n) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}
