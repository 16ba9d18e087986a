package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// readiness probes Redis in the background and keeps the answer for
// /readyz and the gRPC health service, so a probe never waits on Redis.
type readiness struct {
	ping   func(context.Context) error
	health *health.Server
	last   atomic.Pointer[error]
}

var errNotProbed = errors.New("redis not probed yet")

func newReadiness(ping func(context.Context) error, hs *health.Server) *readiness {
	r := &readiness{ping: ping, health: hs}
	r.last.Store(&errNotProbed)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return r
}

// probe pings once and publishes the result.
func (r *readiness) probe(ctx context.Context, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := r.ping(ctx)
	r.last.Store(&err)
	st := healthpb.HealthCheckResponse_SERVING
	if err != nil {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	r.health.SetServingStatus("", st)
}

// run probes every interval until ctx is done.
func (r *readiness) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.probe(ctx, interval/2)
		}
	}
}

// ready is the last probe's answer.
func (r *readiness) ready(context.Context) error { return *r.last.Load() }
