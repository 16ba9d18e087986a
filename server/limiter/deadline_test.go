package limiter

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestStoreContextKeepsTheStoresShareOfTheCallersTime(t *testing.T) {
	parent, cancelParent := context.WithTimeout(context.Background(), time.Second)
	defer cancelParent()
	ctx, cancel := storeContext(parent)
	defer cancel()
	got, ok := ctx.Deadline()
	if !ok {
		t.Fatal("no deadline")
	}
	if left := time.Until(got); left > 901*time.Millisecond || left < 600*time.Millisecond {
		t.Fatalf("store deadline in %v, want ~900ms (0.9 of the caller's 1s)", left)
	}
	ctx2, cancel2 := storeContext(context.Background())
	defer cancel2()
	if got, _ := ctx2.Deadline(); time.Until(got) > 901*time.Millisecond {
		t.Fatalf("without a caller deadline: %v, want 0.9 × DefaultDeadline", time.Until(got))
	}
}

func TestStoreContextExpiresAtItsDeadline(t *testing.T) {
	start := time.Now()
	ctx, cancel := storeContext(context.Background()) // 0.9 × DefaultDeadline
	defer cancel()
	if ctx.Err() != nil {
		t.Fatalf("Err before the deadline: %v", ctx.Err())
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done never closed")
	}
	if took := time.Since(start); took < 850*time.Millisecond {
		t.Fatalf("Done after %v, want at the store's deadline (900ms)", took)
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("Err = %v, want DeadlineExceeded", ctx.Err())
	}
}

func TestStoreContextFollowsTheCallerAndItsCancel(t *testing.T) {
	t.Run("caller canceled", func(t *testing.T) {
		parent, cancelParent := context.WithCancel(context.Background())
		ctx, cancel := storeContext(parent)
		defer cancel()
		child, cancelChild := context.WithCancel(ctx)
		defer cancelChild()
		cancelParent()
		select {
		case <-child.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("a child of the store context outlived the caller")
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err = %v", ctx.Err())
		}
	})
	t.Run("canceled before anyone waited", func(t *testing.T) {
		ctx, cancel := storeContext(context.Background())
		cancel()
		select {
		case <-ctx.Done():
		default:
			t.Fatal("Done open after cancel")
		}
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("Err = %v", ctx.Err())
		}
	})
	t.Run("canceled after a child registered", func(t *testing.T) {
		ctx, cancel := storeContext(context.Background())
		before := runtime.NumGoroutine()
		child, cancelChild := context.WithTimeout(ctx, time.Hour)
		defer cancelChild()
		if n := runtime.NumGoroutine(); n > before {
			t.Errorf("a child context started %d goroutine(s) to watch its parent", n-before)
		}
		cancel()
		select {
		case <-child.Done():
		case <-time.After(2 * time.Second):
			t.Fatal("child not canceled with the store context")
		}
	})
}

type valueKey struct{}

func TestStoreContextCarriesTheCallersValues(t *testing.T) {
	parent := context.WithValue(context.Background(), valueKey{}, "trace")
	ctx, cancel := storeContext(parent)
	defer cancel()
	if ctx.Value(valueKey{}) != "trace" {
		t.Fatal("value lost")
	}
	_ = ctx.Done()
	if ctx.Value(valueKey{}) != "trace" {
		t.Fatal("value lost once waited on")
	}
}
