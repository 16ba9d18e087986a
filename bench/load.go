package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// callFunc makes one call. over reports an OVER_LIMIT answer (an answer, not
// an error).
type callFunc func(ctx context.Context) (over bool, err error)

// callTimeout bounds every single call so that no caller can hang.
const callTimeout = 5 * time.Second

// loadResult is what one run measured.
type loadResult struct {
	name     string
	callers  int
	conns    int
	offered  float64       // calls per second scheduled; 0 = closed loop
	elapsed  time.Duration // the measured window
	hist     histogram     // latency of every call that completed in the window
	over     uint64        // OVER_LIMIT answers in the window
	errs     [codesCount]uint64
	allCalls uint64 // every call made, warm-up included
}

// codesCount covers every gRPC code (0..16) and one slot for "not a status".
const codesCount = 18

const notStatus = codesCount - 1

// Errors returns the number of failed calls in the window.
func (r *loadResult) Errors() uint64 {
	var n uint64
	for _, c := range r.errs {
		n += c
	}
	return n
}

// Rate returns calls per second in the window, errors excluded.
func (r *loadResult) Rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.hist.Count()-r.Errors()) / r.elapsed.Seconds()
}

// ErrorSummary returns "Unavailable=3 DeadlineExceeded=1" or "0".
func (r *loadResult) ErrorSummary() string {
	s := ""
	for c, n := range r.errs {
		if n == 0 {
			continue
		}
		name := "other"
		if c != notStatus {
			name = codes.Code(c).String()
		}
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s=%d", name, n)
	}
	if s == "" {
		return "0"
	}
	return s
}

// caller is the private state of one calling goroutine.
type caller struct {
	hist  histogram
	over  uint64
	errs  [codesCount]uint64
	calls uint64
}

// window is the measured part of a run: a call counts in it when it ends
// inside [start, end).
type window struct{ start, end time.Time }

// runLoad runs one goroutine per entry of calls: for warmup unmeasured, then
// for duration measured. With rate 0 each caller calls back to back (closed
// loop); otherwise the callers share a schedule of rate calls per second from
// the start of the warm-up (open loop, see openLoop). Every call has its own
// timeout, and the whole run ends by ctx, so it never outlasts
// warmup+duration+callTimeout.
func runLoad(ctx context.Context, name string, conns int, rate float64, warmup, duration time.Duration, calls []callFunc) (*loadResult, error) {
	start := time.Now()
	w := window{start: start.Add(warmup)}
	w.end = w.start.Add(duration)
	ctx, cancel := context.WithDeadline(ctx, w.end.Add(callTimeout))
	defer cancel()

	pace, stopPacing := startPacer(ctx, rate, start, w.end)
	cs := make([]caller, len(calls))
	var wg sync.WaitGroup
	for i := range cs {
		c, call := &cs[i], calls[i]
		wg.Go(func() { c.loop(ctx, call, pace, w) })
	}
	wg.Wait()
	stopPacing()
	if err := ctx.Err(); err != nil && time.Now().Before(w.end) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	r := &loadResult{name: name, callers: len(calls), conns: conns, offered: rate, elapsed: duration}
	for i := range cs {
		r.add(&cs[i])
	}
	return r, nil
}

// loop makes the calls of one caller, each as soon as pace says it is due,
// until a call ends after the window, the schedule ends, or ctx ends. A call's
// latency is the time from when it was due to when it returned.
func (c *caller) loop(ctx context.Context, call callFunc, pace pacer, w window) {
	for ctx.Err() == nil {
		due, ok := pace.next()
		if !ok || !due.Before(w.end) {
			return
		}
		cctx, ccancel := context.WithTimeout(ctx, callTimeout)
		over, err := call(cctx)
		end := time.Now()
		ccancel()
		c.calls++
		if end.Before(w.start) {
			continue
		}
		if !end.Before(w.end) || aborted(ctx, err) {
			return
		}
		c.record(end.Sub(due), over, err)
	}
}

// aborted reports whether err is the run's own context ending rather than
// the call failing.
func aborted(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled)
}

// record counts one call that ended in the window.
func (c *caller) record(latency time.Duration, over bool, err error) {
	c.hist.Record(latency)
	switch {
	case err != nil:
		if s, ok := status.FromError(err); ok && int(s.Code()) < notStatus {
			c.errs[s.Code()]++
		} else {
			c.errs[notStatus]++
		}
	case over:
		c.over++
	}
}

// add merges what caller c measured into r.
func (r *loadResult) add(c *caller) {
	r.hist.Merge(&c.hist)
	r.over += c.over
	r.allCalls += c.calls
	for j, n := range c.errs {
		r.errs[j] += n
	}
}

// dialConns opens n gRPC connections to addr (loopback, plaintext) and
// returns them with a function that closes them all.
func dialConns(addr string, n int) ([]*grpc.ClientConn, func(), error) {
	conns := make([]*grpc.ClientConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		cc, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		cc.Connect()
		conns = append(conns, cc)
	}
	return conns, closeAll, nil
}
