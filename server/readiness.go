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

// healthServices are the names the gRPC health service answers for: the
// server as a whole, and the one envoyproxy/ratelimit registers, so that
// health checks configured for it keep working.
var healthServices = []string{"", "ratelimit"}

func newReadiness(ping func(context.Context) error, hs *health.Server) *readiness {
	r := &readiness{ping: ping, health: hs}
	r.last.Store(&errNotProbed)
	r.publish(healthpb.HealthCheckResponse_NOT_SERVING)
	return r
}

// publish sets the gRPC health status of every name.
func (r *readiness) publish(st healthpb.HealthCheckResponse_ServingStatus) {
	for _, name := range healthServices {
		r.health.SetServingStatus(name, st)
	}
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
	r.publish(st)
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
