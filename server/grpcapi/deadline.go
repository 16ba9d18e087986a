package grpcapi

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// DefaultDeadline bounds a call whose caller set no deadline of its own.
const DefaultDeadline = time.Second

// storeShare is the part of the caller's remaining time given to Redis, so
// that a dead Redis is answered with Unavailable before the caller gives up.
const storeShare = 0.9

// DeadlineInterceptor gives every unary call a deadline (DefaultDeadline when
// the caller set none) and keeps storeShare of what remains for the store, so
// no call waits on a dead Redis past the caller's patience.
func DeadlineInterceptor(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, cancel := storeContext(ctx)
	defer cancel()
	return handler(ctx, req)
}

func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	left := DefaultDeadline
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	c := &lazyDeadline{parent: ctx, deadline: time.Now().Add(time.Duration(float64(left) * storeShare))}
	return c, c.cancel
}

// lazyDeadline is context.WithDeadline(parent, deadline) made only when
// something waits on it. Its Deadline is known at once (the Redis client
// sets its socket deadlines from it), but the timer behind Done is started
// by the first call of Done, Err or AfterFunc — on the Redis path. A
// decision answered from a quota lease never waits, so it never pays for a
// timer (with leases, context.WithTimeout was 4% of a decision's CPU).
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu       sync.Mutex
	inner    context.Context    // nil until started
	stop     context.CancelFunc // inner's
	canceled bool               // cancel was called
}

func (c *lazyDeadline) start() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.stop = context.WithDeadline(c.parent, c.deadline)
		if c.canceled {
			c.stop()
		}
	}
	return c.inner
}

func (c *lazyDeadline) cancel() {
	c.mu.Lock()
	c.canceled = true
	stop := c.stop
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *lazyDeadline) Done() <-chan struct{}       { return c.start().Done() }
func (c *lazyDeadline) Err() error                  { return c.start().Err() }

// AfterFunc lets a child context register with the timer's context instead
// of starting a goroutine to watch Done.
func (c *lazyDeadline) AfterFunc(f func()) func() bool { return context.AfterFunc(c.start(), f) }

// Value answers from the timer's context once it runs, so that a child
// context finds it as its parent and is canceled with it without a goroutine.
func (c *lazyDeadline) Value(key any) any {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		return inner.Value(key)
	}
	return c.parent.Value(key)
}
