package client

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// reporter sends usage reports from a bounded queue on one goroutine.
type reporter struct {
	api   sluicev1.RateLimitServiceClient
	stats *counters
	opts  options

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	queue  chan *sluicev1.ReportUsageRequest

	ctx    context.Context // ends the retries of a Close that ran out of time
	cancel context.CancelFunc
	done   chan struct{}
}

func newReporter(api sluicev1.RateLimitServiceClient, stats *counters, o options) *reporter {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reporter{
		api:    api,
		stats:  stats,
		opts:   o,
		queue:  make(chan *sluicev1.ReportUsageRequest, o.queueSize),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go r.run()
	return r
}

// enqueue adds a report without blocking; a full queue or a closed reporter
// drops it.
func (r *reporter) enqueue(in *sluicev1.ReportUsageRequest) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.stats.dropped.Add(1)
		return
	}
	select {
	case r.queue <- in:
		r.stats.queued.Add(1)
	default:
		r.stats.dropped.Add(1)
	}
}

func (r *reporter) run() {
	defer close(r.done)
	for in := range r.queue {
		if r.ctx.Err() != nil {
			r.stats.lost.Add(1)
			continue
		}
		if r.send(in) {
			r.stats.sent.Add(1)
		} else {
			r.stats.lost.Add(1)
		}
	}
}

// send makes one report, retrying transient failures with backoff.
func (r *reporter) send(in *sluicev1.ReportUsageRequest) bool {
	backoff := r.opts.reportBackoff
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, r.opts.reportTimeout)
		_, err := r.api.ReportUsage(ctx, in)
		cancel()
		if err == nil {
			return true
		}
		if !retryable(err) || attempt >= r.opts.reportRetries || !sleep(r.ctx, backoff) {
			return false
		}
		r.stats.reportRetries.Add(1)
		backoff *= 2
	}
}

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// close stops accepting reports and waits until the queue is sent or ctx
// ends; what is left then is counted lost.
func (r *reporter) close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		r.cancel()
		return nil
	case <-ctx.Done():
		r.cancel()
		<-r.done
		return fmt.Errorf("sluice client: close: reports not flushed: %w", ctx.Err())
	}
}
