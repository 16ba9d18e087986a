package limiter

import (
	"context"
	"time"
)

// DefaultDeadline bounds a store call whose caller set no deadline of its own.
const DefaultDeadline = time.Second

// storeShare is the part of the caller's remaining time given to Redis, so
// that a dead Redis is answered with Unavailable before the caller gives up.
const storeShare = 0.9

// storeContext is the context a store call runs under: storeShare of the
// time ctx has left (of DefaultDeadline when it has no deadline). It is made
// in storeCall, so a decision that never goes to Redis — one answered from a
// lease or from the over-limit cache — makes no timer.
func storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	left := DefaultDeadline
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	return context.WithTimeout(ctx, time.Duration(float64(left)*storeShare))
}
