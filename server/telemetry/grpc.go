package telemetry

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor times every call (sluice_call_duration_seconds),
// logs it at debug level with its trace id, and logs calls that failed with
// Internal or Unknown at error level. Put it first in the chain so that it
// times the whole call.
func (t *Telemetry) UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	took := time.Since(start)
	code := status.Code(err)
	t.callDuration.Record(ctx, took.Seconds(), t.calls.get(callKey{info.FullMethod, code})...)
	switch {
	case code == codes.Internal || code == codes.Unknown:
		t.log.LogAttrs(ctx, slog.LevelError, "call failed",
			slog.String("method", info.FullMethod), slog.String("code", code.String()), slog.Any("err", err))
	case t.log.Enabled(ctx, slog.LevelDebug):
		t.log.LogAttrs(ctx, slog.LevelDebug, "call",
			slog.String("method", info.FullMethod), slog.String("code", code.String()), slog.Duration("took", took))
	}
	return resp, err
}

// StatsHandler is otelgrpc's server handler, which starts the span of each
// call (health checks excepted) from the W3C trace context the caller sent;
// nil when tracing is off. Its own metrics are off: the interceptor's
// sluice_call_duration_seconds covers them.
func (t *Telemetry) StatsHandler() stats.Handler {
	if !t.tracing {
		return nil
	}
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}
