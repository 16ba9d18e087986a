//go:build !linux

package main

import (
	"context"
	"time"
)

// pacingThread does nothing here: only Linux has a precise sleep for the
// pacer (pacing_linux.go).
func pacingThread() (release func()) { return func() {} }

// sleepUntil returns at t, or at once if t has passed; it returns ctx's error
// if ctx ends first. It uses a Go timer, which may wake up to a millisecond
// late when the process is idle; that lateness counts in the latencies.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
