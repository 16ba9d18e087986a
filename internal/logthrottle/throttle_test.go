package logthrottle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestOneRecordPerIntervalCountingTheRest(t *testing.T) {
	var th Throttle
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if ok, n := th.Allow(t0); !ok || n != 0 {
		t.Fatalf("first record: %v %d, want let through", ok, n)
	}
	for i := range 5 {
		if ok, _ := th.Allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("record %d within the second was let through", i)
		}
	}
	if ok, n := th.Allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("a second later: %v %d, want let through saying 5 were left out", ok, n)
	}
}

func TestConcurrentCallersLetOneThrough(t *testing.T) {
	th := Throttle{Every: time.Hour}
	now := time.Now()
	var through atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if ok, _ := th.Allow(now); ok {
				through.Add(1)
			}
		})
	}
	wg.Wait()
	if through.Load() != 1 {
		t.Fatalf("%d records let through at once, want 1", through.Load())
	}
}
