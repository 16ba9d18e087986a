package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The hand-off between a caller and the flushers, on a Redis that hangs:
// one flusher taking one call at a time, so the first call stays in flight
// and the ones after it stay queued for as long as the test wants.

// slack is what a call may take past the moment it should return.
const slack = 500 * time.Millisecond

// hungBatcher is a Store whose one flusher sends one call at a time to a
// Redis that never answers.
func hungBatcher(t *testing.T, queue int) *Store {
	t.Helper()
	return openStore(t, blackhole(t), Config{Batch: BatchConfig{Flushers: 1, MaxBatch: 1, QueueSize: queue}})
}

// outcome is what one call returned and when.
type outcome struct {
	err  error
	took time.Duration
}

// startCall makes one echo call in the background; its outcome arrives on
// the channel.
func startCall(ctx context.Context, t *testing.T, s *Store) <-chan outcome {
	out := make(chan outcome, 1)
	go func() {
		start := time.Now()
		_, err := runEcho(ctx, s.Scripter, testKey(t, "n"), "x")
		out <- outcome{err, time.Since(start)}
	}()
	return out
}

// occupyFlusher starts a call that holds the one flusher until ctx ends
// (Redis never answers) and gives it time to be taken off the queue.
func occupyFlusher(ctx context.Context, t *testing.T, s *Store) <-chan outcome {
	out := startCall(ctx, t, s)
	time.Sleep(100 * time.Millisecond)
	return out
}

func TestContextEndsWhileQueued(t *testing.T) {
	for _, end := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 150*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(150*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(end.name, func(t *testing.T) {
			s := hungBatcher(t, 8)
			held, release := context.WithTimeout(context.Background(), 3*time.Second)
			defer release()
			inFlight := occupyFlusher(held, t, s)

			ctx, cancel := end.ctx()
			defer cancel()
			got := <-startCall(ctx, t, s) // queued behind the call in flight
			if !errors.Is(got.err, end.want) {
				t.Errorf("queued call: err = %v, want %v", got.err, end.want)
			}
			if got.took > 150*time.Millisecond+slack {
				t.Errorf("queued call returned after %v, its context ended at 150ms", got.took)
			}
			release()
			<-inFlight
		})
	}
}

func TestContextEndsWhileInFlight(t *testing.T) {
	s := hungBatcher(t, 8)
	ctx, cancel := context.WithCancel(context.Background())
	inFlight := occupyFlusher(ctx, t, s)
	cancel()
	got := <-inFlight
	if !errors.Is(got.err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", got.err)
	}
	// The pipeline itself waits MinPipelineTimeout; its caller does not.
	if got.took > 100*time.Millisecond+slack {
		t.Errorf("call in flight returned after %v, canceled at 100ms", got.took)
	}
}

func TestContextEndsWaitingForRoom(t *testing.T) {
	s := hungBatcher(t, 1)
	held, release := context.WithTimeout(context.Background(), 3*time.Second)
	defer release()
	inFlight := occupyFlusher(held, t, s)
	queued := startCall(held, t, s) // fills the queue
	time.Sleep(50 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	got := <-startCall(ctx, t, s)
	if !errors.Is(got.err, context.DeadlineExceeded) || got.took > 150*time.Millisecond+slack {
		t.Errorf("call waiting for room: err = %v after %v, want context.DeadlineExceeded at 150ms", got.err, got.took)
	}
	release()
	<-inFlight
	<-queued
}

// TestCloseFailsQueuedCalls closes a Batcher with one call in flight, calls
// queued and a call waiting for room in the queue: the queued ones and the
// waiting one fail with redis.ErrClosed once the call in flight is done,
// long before their own deadlines; Close returns; later calls fail with
// redis.ErrClosed at once; no goroutine is left (TestMain checks).
func TestCloseFailsQueuedCalls(t *testing.T) {
	const queued = 4
	s := hungBatcher(t, queued)
	held, release := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer release()
	inFlight := occupyFlusher(held, t, s)

	long, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var waiting []<-chan outcome
	for range queued + 1 { // the last waits for room
		waiting = append(waiting, startCall(long, t, s))
	}
	time.Sleep(50 * time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- s.Scripter.(*Batcher).Close() }()
	var wg sync.WaitGroup
	for i, w := range waiting {
		wg.Go(func() {
			got := <-w
			if !errors.Is(got.err, redis.ErrClosed) {
				t.Errorf("call %d: err = %v, want redis.ErrClosed", i, got.err)
			}
			if got.took > time.Second+slack {
				t.Errorf("call %d returned after %v; the call in flight ended at 300ms", i, got.took)
			}
		})
	}
	wg.Wait()
	if got := <-inFlight; got.err == nil {
		t.Error("call in flight to a hung Redis succeeded")
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not return")
	}
	after, cancelAfter := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelAfter()
	start := time.Now()
	if _, err := runEcho(after, s.Scripter, testKey(t, "n"), "x"); !errors.Is(err, redis.ErrClosed) || time.Since(start) > slack {
		t.Errorf("call after Close: err = %v after %v, want redis.ErrClosed at once", err, time.Since(start))
	}
}
