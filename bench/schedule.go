package main

import (
	"context"
	"time"
)

// pacer says when each call of a run is due. A call's latency is measured
// from the time it was due, so a server that falls behind the schedule shows
// up in the percentiles instead of slowing the callers down and hiding it
// (coordinated omission). It is shared by all callers of a run and safe for
// concurrent use.
type pacer interface {
	// next returns when the calling caller's next call is due, waiting if
	// need be; a time that has already passed means: send now. ok is false
	// when the schedule has ended.
	next() (due time.Time, ok bool)
}

// startPacer returns the pacer of a run that starts at start and is measured
// until end: a closed loop for rate 0, otherwise an open loop of rate calls
// per second. stop ends the pacer and waits for it; the pacer also ends with
// ctx.
func startPacer(ctx context.Context, rate float64, start, end time.Time) (p pacer, stop func()) {
	if rate <= 0 {
		return closedLoop{}, func() {}
	}
	return startOpenLoop(ctx, rate, start, end)
}

// startOpenLoop is startPacer for a rate > 0, returning the open loop itself
// for a run that needs the slots' numbers (nextSlot).
func startOpenLoop(ctx context.Context, rate float64, start, end time.Time) (s *openLoop, stop func()) {
	s = &openLoop{start: start, rate: rate, slots: make(chan uint64)}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.dispatch(ctx, end)
	}()
	return s, func() { cancel(); <-done }
}

// closedLoop paces nothing: each caller's next call is due the moment its
// previous one returns, so latency is measured from the actual send.
type closedLoop struct{}

func (closedLoop) next() (time.Time, bool) { return time.Now(), true }

// openLoop is a fixed schedule of rate calls per second from start: slot j is
// due at start + j/rate, whether or not earlier calls have returned.
//
// One pacing goroutine (dispatch) waits for each slot's time and hands the
// slot to whichever caller is free, so the calls spread evenly over the
// callers (caller i of n gets about every n-th slot) and at most one call per
// caller is in flight. When every caller is busy at a slot's time, the slot
// goes to the first caller to come free, which sends it at once; its latency
// still counts from when it was due.
type openLoop struct {
	start time.Time
	rate  float64     // calls per second, > 0
	slots chan uint64 // unbuffered: a slot is handed out only to a free caller
}

func (s *openLoop) next() (time.Time, bool) {
	_, due, ok := s.nextSlot()
	return due, ok
}

// nextSlot is next that also says which slot of the schedule the call is:
// slot j is due at start + j/rate.
func (s *openLoop) nextSlot() (j uint64, due time.Time, ok bool) {
	j, ok = <-s.slots
	if !ok {
		return 0, time.Time{}, false
	}
	return j, s.slotTime(j), true
}

// slotTime returns when slot j is due.
func (s *openLoop) slotTime(j uint64) time.Time {
	return s.start.Add(time.Duration(float64(j) * float64(time.Second) / s.rate))
}

// dispatch hands out the slots due before end, each no earlier than its time,
// then closes s.slots. It returns early when ctx ends.
//
// It runs on a thread of its own with a precise sleep (pacingThread, sleepUntil):
// Go's timers wake up to a millisecond late when the process is idle, and
// that lateness would count in every call's latency.
func (s *openLoop) dispatch(ctx context.Context, end time.Time) {
	defer close(s.slots)
	release := pacingThread()
	defer release()
	for j := uint64(0); ; j++ {
		due := s.slotTime(j)
		if !due.Before(end) {
			return
		}
		if sleepUntil(ctx, due) != nil {
			return
		}
		select {
		case s.slots <- j:
		case <-ctx.Done():
			return
		}
	}
}
