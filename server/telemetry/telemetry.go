// Package telemetry shows what Sluice is doing: OpenTelemetry metrics exported
// in the Prometheus format on /metrics, OpenTelemetry traces (a span for each
// call and one for each Redis script inside it), and log/slog records that
// carry the trace id.
//
// # How it works
//
// A [Telemetry] owns a dedicated Prometheus registry and an OpenTelemetry
// MeterProvider that exports into it, so two servers in one process (or two
// tests) never share a series. It implements [limiter.Observer]: the limiter
// calls Decided, Reported and StoreCall on every decision, report and script
// call. Those run on the hot path, so every instrument is created up front and
// the attribute sets of a (domain, descriptor, limit) are built once and kept
// in a copy-on-write map that readers consult without locking; counting a
// decision allocates nothing. Descriptor values from requests become label
// values only for descriptors the config marks detailed_metric or
// value_to_metric; everything else is labelled with names taken from the
// config, so cardinality is bounded by the config, not by the traffic.
//
// Traces are off unless a TracerProvider is given ([TracerProviderFromEnv]
// builds one from the standard OTEL_* variables). The Redis script span is
// created after the script returns, back-dated by the time it took, as a child
// of the call span that otelgrpc's stats handler started.
//
// The metrics are listed in README.md beside this file.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/exemplar"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/sluice-rl/sluice/internal/logthrottle"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// ScopeName names the instrumentation scope of Sluice's metrics and spans.
const ScopeName = "github.com/sluice-rl/sluice/server/telemetry"

// Options configures a Telemetry.
type Options struct {
	// Configs returns the current limits config; a domain that it does not
	// know is never put in a label (callers may send any string). (Optional,
	// default: every domain name seen in a report is labelled "")
	Configs func() *config.Set
	// TracerProvider receives the call and Redis script spans. (Optional,
	// default: no tracing, and no otelgrpc stats handler)
	TracerProvider trace.TracerProvider
	// Logger receives the sampled Redis error and failed-call logs.
	// (Optional, default slog.Default())
	Logger *slog.Logger
}

// Telemetry is the metrics, traces and logs of one server. It implements
// limiter.Observer. Its methods are safe for concurrent use.
type Telemetry struct {
	registry *prometheus.Registry
	provider *sdkmetric.MeterProvider
	tp       trace.TracerProvider
	tracer   trace.Tracer
	tracing  bool
	log      *slog.Logger
	configs  func() *config.Set

	decisions      *talliedCounter
	nearLimit      metric.Int64Counter
	shadow         metric.Int64Counter
	neverFits      metric.Int64Counter
	tokensReserved metric.Int64Counter
	tokensReported metric.Int64Counter
	tokensMissing  metric.Int64Counter
	reports        metric.Int64Counter
	cacheHits      *talliedCounter
	failedOpen     metric.Int64Counter
	leaseDecisions *talliedCounter
	leaseGrants    metric.Int64Counter
	leaseUnits     metric.Int64Counter
	callDuration   metric.Float64Histogram
	redisDuration  metric.Float64Histogram
	redisErrors    metric.Int64Counter
	callerGone     metric.Int64Counter
	circuitOpens   metric.Int64Counter
	reloads        metric.Int64Counter
	reloadErrors   metric.Int64Counter

	limits  cache[limitKey, *limitSeries]
	domains cache[string, *domainSeries]
	scripts cache[string, *scriptSeries]
	calls   cache[callKey, []metric.RecordOption]
	reportV [numVias][]metric.AddOption
	noAttrs []metric.AddOption

	// Redis errors are logged at most once per second; the others are
	// counted and said in the next log line.
	redisLog logthrottle.Throttle
}

var (
	_ limiter.Observer        = (*Telemetry)(nil)
	_ limiter.LeaseObserver   = (*Telemetry)(nil)
	_ limiter.CircuitObserver = (*Telemetry)(nil)
)

// Latency buckets, in seconds: 50 µs to 2.5 s. A decision is one Redis round
// trip (tens to hundreds of µs); the default deadline is 1 s.
var (
	callBuckets  = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	redisBuckets = []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

// New builds the metrics (in a registry of their own) and, when
// opts.TracerProvider is set, the tracing of one server. Call Shutdown when
// the server is done.
func New(opts Options) (*Telemetry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	t := &Telemetry{
		registry: prometheus.NewRegistry(),
		tp:       opts.TracerProvider,
		tracing:  opts.TracerProvider != nil,
		log:      opts.Logger,
		configs:  opts.Configs,
	}
	if t.tp == nil {
		t.tp = tracenoop.NewTracerProvider()
	}
	t.tracer = t.tp.Tracer(ScopeName)
	if err := t.registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	if err := t.registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(t.registry),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	providerOpts := []sdkmetric.Option{sdkmetric.WithReader(exp)}
	if !t.tracing {
		// Exemplars come only from sampled spans: without tracing the default
		// filter finds none, after looking for a span in every measurement.
		providerOpts = append(providerOpts, sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter))
	}
	t.provider = sdkmetric.NewMeterProvider(providerOpts...)
	if err := t.instruments(t.provider.Meter(ScopeName)); err != nil {
		_ = t.provider.Shutdown(context.Background())
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t.limits.build = t.newLimitSeries
	t.domains.build = t.newDomainSeries
	t.scripts.build = newScriptSeries
	t.calls.build = newCallSeries
	for v := range numVias {
		t.reportV[v] = addOpts(attrVia.String(via(v).String()))
	}
	t.noAttrs = []metric.AddOption{}
	// Series without labels start at 0, so that rate() and increase() see
	// the first reload.
	t.reloads.Add(context.Background(), 0, t.noAttrs...)
	t.reloadErrors.Add(context.Background(), 0, t.noAttrs...)
	return t, nil
}

// instruments creates every instrument up front.
func (t *Telemetry) instruments(m metric.Meter) error {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	tallied := func(name, unit, desc string) *talliedCounter {
		c, err := newTalliedCounter(m, name, unit, desc)
		errs = append(errs, err)
		return c
	}
	histogram := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	t.decisions = tallied("sluice.decisions", "{decision}", "Decisions per request descriptor that matched a limit, by the deciding limit and the descriptor's code.")
	t.nearLimit = counter("sluice.near_limit", "{decision}", "Admitted decisions after which a limit had used at least 80% of its amount.")
	t.shadow = counter("sluice.shadow_mode", "{decision}", "Decisions a shadow_mode descriptor's limit would have refused; the call was not refused for it.")
	t.neverFits = counter("sluice.never_fits", "{decision}", "Refusals of a cost above the whole limit: waiting will not help, so no retry_after was sent.")
	t.tokensReserved = counter("sluice.tokens.reserved", "{token}", "Tokens reserved by admitted calls with a usage_estimate, by token kind.")
	t.tokensReported = counter("sluice.tokens.reported", "{token}", "Tokens that gateways reported as used, by token kind and how they were reported.")
	t.tokensMissing = counter("sluice.tokens.missing", "{token}", "Tokens reported against a reservation that was unknown or expired, charged by descriptors instead.")
	t.reports = counter("sluice.reports", "{report}", "Successful usage reports, by how they were charged.")
	t.cacheHits = tallied("sluice.over_limit_cache.hits", "{decision}", "Refusals answered from the replica's over-limit cache, without a Redis call.")
	t.failedOpen = counter("sluice.failed_open", "{decision}", "Calls admitted uncounted because Redis could not be asked and the domain's failure_mode is open.")
	t.leaseDecisions = tallied("sluice.lease.decisions", "{decision}", "Decisions answered entirely from the replica's quota leases, without a Redis call.")
	t.leaseGrants = counter("sluice.lease.grants", "{grant}", "Quota lease grants of at least one unit.")
	t.leaseUnits = counter("sluice.lease.units", "{unit}", "Units of quota leases: granted, returned unspent, or wasted (neither spent nor returned).")
	t.redisErrors = counter("sluice.redis.errors", "{error}", "Redis script calls that failed, by reason.")
	t.callerGone = counter("sluice.redis.caller_gone", "{call}", "Script calls their caller ended (its own deadline, or it left) before Redis answered and too soon to blame Redis: not Redis failures.")
	t.circuitOpens = counter("sluice.circuit.opens", "{open}", "Times the circuit breaker opened after failures Redis caused.")
	t.reloads = counter("sluice.config.reloads", "{reload}", "Config reloads that were applied.")
	t.reloadErrors = counter("sluice.config.reload_errors", "{reload}", "Config reloads that failed; the previous config stayed.")
	t.callDuration = histogram("sluice.call.duration", "Duration of each gRPC call (HTTP calls included: they pass through gRPC), by method and status code.", callBuckets)
	t.redisDuration = histogram("sluice.redis.duration", "Duration of each Redis script call, by script.", redisBuckets)
	return errors.Join(errs...)
}

// MetricsHandler serves the registry in the Prometheus exposition format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{Registry: t.registry})
}

// Registry is the Prometheus registry the metrics are exported into.
func (t *Telemetry) Registry() *prometheus.Registry { return t.registry }

// Shutdown stops the metrics; the TracerProvider belongs to whoever made it.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.provider.Shutdown(ctx) }

// ConfigReloaded counts a config reload that was applied.
func (t *Telemetry) ConfigReloaded() { t.reloads.Add(context.Background(), 1, t.noAttrs...) }

// ConfigReloadFailed counts a config reload that failed.
func (t *Telemetry) ConfigReloadFailed() { t.reloadErrors.Add(context.Background(), 1, t.noAttrs...) }
