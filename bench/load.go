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

// runLoad runs one goroutine per entry of calls, each calling back to back: for warmup
// unmeasured, then for duration measured. A call counts in the window when it
// ends inside it. Every call has its own timeout, and the whole run ends by
// ctx, so it never outlasts warmup+duration+callTimeout.
func runLoad(ctx context.Context, name string, conns int, warmup, duration time.Duration, calls []callFunc) (*loadResult, error) {
	start := time.Now()
	mStart := start.Add(warmup)
	mEnd := mStart.Add(duration)
	ctx, cancel := context.WithDeadline(ctx, mEnd.Add(callTimeout))
	defer cancel()

	cs := make([]caller, len(calls))
	var wg sync.WaitGroup
	for i := range cs {
		c, call := &cs[i], calls[i]
		wg.Go(func() {
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, callTimeout)
				t0 := time.Now()
				over, err := call(cctx)
				t1 := time.Now()
				ccancel()
				c.calls++
				if t1.Before(mStart) {
					continue
				}
				if !t1.Before(mEnd) {
					return
				}
				c.hist.Record(t1.Sub(t0))
				switch {
				case err != nil:
					if ctx.Err() != nil && errors.Is(err, context.Canceled) {
						return
					}
					if s, ok := status.FromError(err); ok && int(s.Code()) < notStatus {
						c.errs[s.Code()]++
					} else {
						c.errs[notStatus]++
					}
				case over:
					c.over++
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && time.Now().Before(mEnd) {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	r := &loadResult{name: name, callers: len(calls), conns: conns, elapsed: duration}
	for i := range cs {
		c := &cs[i]
		r.hist.Merge(&c.hist)
		r.over += c.over
		r.allCalls += c.calls
		for j, n := range c.errs {
			r.errs[j] += n
		}
	}
	return r, nil
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
