package grpcapi

import (
	"context"
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
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithTimeout(ctx, time.Duration(float64(DefaultDeadline)*storeShare))
	}
	return context.WithTimeout(ctx, time.Duration(float64(time.Until(deadline))*storeShare))
}
