package main

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestOpenLoopSlotTimes(t *testing.T) {
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := &openLoop{start: start, rate: 2000}
	for j, want := range map[uint64]time.Duration{
		0:    0,
		1:    500 * time.Microsecond,
		64:   32 * time.Millisecond,
		2000: time.Second,
		9999: 4*time.Second + 999500*time.Microsecond,
	} {
		if got := s.slotTime(j).Sub(start); got != want {
			t.Errorf("slot %d at +%v, want +%v", j, got, want)
		}
	}
	third := &openLoop{start: start, rate: 3}
	if got, want := third.slotTime(7).Sub(start), 2333333333*time.Nanosecond; got != want {
		t.Errorf("slot 7 at 3/s at +%v, want +%v", got, want)
	}
}

// TestOpenLoopHandsOutEverySlotOnce: callers taking slots concurrently get
// every slot of the schedule before its end exactly once, in order per
// caller, and then the schedule ends.
func TestOpenLoopHandsOutEverySlotOnce(t *testing.T) {
	const callers, slots, rate = 8, 4000, 10_000
	start := time.Now().Add(-time.Hour) // every slot is already due
	end := start.Add(slots * time.Second / rate)
	p, stop := startPacer(t.Context(), rate, start, end)
	defer stop()
	got := make([][]time.Time, callers)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			for {
				due, ok := p.next()
				if !ok {
					return
				}
				got[i] = append(got[i], due)
			}
		})
	}
	wg.Wait()
	var all []time.Time
	for i, ts := range got {
		if !slices.IsSortedFunc(ts, time.Time.Compare) {
			t.Errorf("caller %d got its slots out of order", i)
		}
		all = append(all, ts...)
	}
	if len(all) != slots {
		t.Fatalf("%d slots handed out, want %d", len(all), slots)
	}
	slices.SortFunc(all, time.Time.Compare)
	s := &openLoop{start: start, rate: rate}
	for j, at := range all {
		if want := s.slotTime(uint64(j)); !at.Equal(want) {
			t.Fatalf("slot %d: got +%v, want +%v (a slot lost or handed out twice)", j, at.Sub(start), want.Sub(start))
		}
	}
}

// TestOpenLoopNeverEarly: a slot reaches a caller at its time or later,
// never before.
func TestOpenLoopNeverEarly(t *testing.T) {
	start := time.Now()
	p, stop := startPacer(t.Context(), 1000, start, start.Add(50*time.Millisecond))
	defer stop()
	n := 0
	for {
		due, ok := p.next()
		now := time.Now()
		if !ok {
			break
		}
		if now.Before(due) {
			t.Errorf("slot due at +%v handed out at +%v", due.Sub(start), now.Sub(start))
		}
		n++
	}
	if n != 50 {
		t.Errorf("%d slots in 50ms at 1000/s, want 50", n)
	}
}

// TestPacerStop: stop returns while the pacer waits to hand out a slot no
// caller takes, and ends the schedule.
func TestPacerStop(t *testing.T) {
	start := time.Now()
	p, stop := startPacer(t.Context(), 1000, start, start.Add(time.Hour))
	time.Sleep(5 * time.Millisecond)
	stop()
	if _, ok := p.next(); ok {
		t.Error("the schedule goes on after stop")
	}
}

func TestClosedLoop(t *testing.T) {
	p, stop := startPacer(t.Context(), 0, time.Now(), time.Now().Add(time.Hour))
	defer stop()
	if _, ok := p.(closedLoop); !ok {
		t.Fatalf("rate 0: got %T, want a closed loop", p)
	}
	before := time.Now()
	if due, ok := p.next(); !ok || due.Before(before) || due.After(time.Now()) {
		t.Error("a closed loop's call should be due now")
	}
}

func TestSleepUntil(t *testing.T) {
	ctx := context.Background()
	t0 := time.Now()
	if err := sleepUntil(ctx, t0.Add(-time.Hour)); err != nil || time.Since(t0) > time.Second {
		t.Errorf("a past time: err %v after %v, want nil at once", err, time.Since(t0))
	}
	if err := sleepUntil(ctx, t0.Add(20*time.Millisecond)); err != nil || time.Since(t0) < 20*time.Millisecond {
		t.Errorf("a future time: err %v after %v, want nil after 20ms", err, time.Since(t0))
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := sleepUntil(canceled, time.Now().Add(time.Hour)); err == nil {
		t.Error("a canceled context should end the sleep with its error")
	}
}

// slowCall is a call that takes d and always succeeds.
func slowCall(d time.Duration) callFunc {
	return func(ctx context.Context) (bool, error) {
		select {
		case <-time.After(d):
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// TestOpenLoopLatencyIncludesLateness: one caller whose calls take 10ms,
// offered 1000 calls/s, falls further behind with every call. Measured from
// the actual send each call takes 10ms; measured from the schedule the
// latency grows towards the length of the run, and the percentiles show it.
func TestOpenLoopLatencyIncludesLateness(t *testing.T) {
	const service = 10 * time.Millisecond
	calls := []callFunc{slowCall(service)}
	closed, err := runLoad(t.Context(), "closed", 1, 0, 0, 300*time.Millisecond, calls)
	if err != nil {
		t.Fatal(err)
	}
	open, err := runLoad(t.Context(), "open", 1, 1000, 0, 300*time.Millisecond, calls)
	if err != nil {
		t.Fatal(err)
	}
	if p50 := closed.hist.Quantile(0.5); p50 < service || p50 > 10*service {
		t.Errorf("closed loop p50 %v, want about %v", p50, service)
	}
	// The k-th call is due at k ms and ends near 10k ms: half-way through
	// the run the latency is about 9 × 150 ms.
	if p50 := open.hist.Quantile(0.5); p50 < 5*service {
		t.Errorf("open loop p50 %v, want well above the %v service time", p50, service)
	}
	if open.offered != 1000 || closed.offered != 0 {
		t.Errorf("offered %v and %v, want 1000 and 0", open.offered, closed.offered)
	}
}

// TestOpenLoopSendsOnSchedule: with fast calls and idle callers, an open
// loop makes about rate × duration calls in the window, not as many as the
// callers can.
func TestOpenLoopSendsOnSchedule(t *testing.T) {
	calls := []callFunc{slowCall(0), slowCall(0)}
	r, err := runLoad(t.Context(), "open", 1, 200, 100*time.Millisecond, 500*time.Millisecond, calls)
	if err != nil {
		t.Fatal(err)
	}
	// 200/s: slots every 5ms, 100 of them due in the 500ms window and 20 in
	// the warm-up; a busy machine may push a few past the window's end.
	if n := r.hist.Count(); n < 50 || n > 101 {
		t.Errorf("%d calls in the window, want about 100", n)
	}
	if r.allCalls > 121 {
		t.Errorf("%d calls made, want at most the 120 slots of warm-up and window (+1)", r.allCalls)
	}
}
