package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

func newTestTelemetry(t testing.TB) *Telemetry {
	t.Helper()
	tel, err := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// gathered is every sluice_ series as "name{k=v,...}" → value.
func gathered(t *testing.T, tel *Telemetry) map[string]float64 {
	t.Helper()
	fams, err := tel.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "sluice_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = value(f.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

var (
	minuteLimit = config.Limit{Kind: config.KindRequests, Window: time.Minute, Buckets: 10, Requests: 10, ID: "r:1m:10"}
	namedLimit  = config.Limit{Kind: config.KindRequests, Name: "burst", Window: time.Second, Buckets: 10, Requests: 5, ID: "r:1s:10"}
	tokenLimit  = config.Limit{Kind: config.KindTotalTokens, Window: time.Minute, Buckets: 10, Requests: 1000, ID: "t:1m:10"}
	dayTokens   = config.Limit{Kind: config.KindTotalTokens, Window: 24 * time.Hour, Buckets: 10, Requests: 100000, ID: "t:24h0m0s:10"}
	promptLimit = config.Limit{Kind: config.KindPromptTokens, Window: time.Minute, Buckets: 10, Requests: 600, ID: "p:1m:10"}
)

func TestDecidedLabelsAndCounts(t *testing.T) {
	tel := newTestTelemetry(t)
	ctx := context.Background()
	req := &limiter.Request{Domain: "apim", Descriptors: []limiter.Descriptor{
		{Entries: []config.Entry{{Key: "api", Value: "A"}}},
		{Entries: []config.Entry{{Key: "user", Value: "alice"}}},
		{Entries: []config.Entry{{Key: "nothing", Value: "x"}}},
	}}
	rules := []config.Rule{
		{Stat: "apim.api_A", Limits: []config.Limit{minuteLimit, namedLimit}},
		{Stat: "apim.user", DetailedMetric: true, Shadow: true, Limits: []config.Limit{minuteLimit}},
		{},
	}
	dec := &limiter.Decision{Statuses: []limiter.Status{
		{Limit: &rules[0].Limits[1], Remaining: 1, Limits: []limiter.LimitState{
			{Limit: &rules[0].Limits[0], Remaining: 2, Charged: 1}, // 80% used: near
			{Limit: &rules[0].Limits[1], Remaining: 1, Charged: 1}, // 80% used: near
		}},
		{Limit: &rules[1].Limits[0], Over: true, Shadow: true, Limits: []limiter.LimitState{
			{Limit: &rules[1].Limits[0], Over: true},
		}},
		{},
	}}
	tel.Decided(ctx, req, rules, dec)
	dec.Statuses[0].Limits[0].Remaining = 3 // 70% used: not near
	tel.Decided(ctx, req, rules, dec)

	want := map[string]float64{
		"sluice_decisions_total{code=ok,descriptor=apim.api_A,domain=apim,limit=burst}":                2,
		"sluice_decisions_total{code=over_limit,descriptor=apim.user_alice,domain=apim,limit=r:1m:10}": 2,
		"sluice_near_limit_total{descriptor=apim.api_A,domain=apim,limit=r:1m:10}":                     1,
		"sluice_near_limit_total{descriptor=apim.api_A,domain=apim,limit=burst}":                       2,
		"sluice_shadow_mode_total{descriptor=apim.user_alice,domain=apim,limit=r:1m:10}":               2,
		"sluice_config_reloads_total{}":       0,
		"sluice_config_reload_errors_total{}": 0,
	}
	assertSeries(t, gathered(t, tel), want)
}

func TestTokensReservedReportedMissing(t *testing.T) {
	tel := newTestTelemetry(t)
	ctx := context.Background()
	// Two total limits and a prompt limit: the call counts once per kind.
	req := &limiter.Request{Domain: "ai", Estimate: &limiter.Usage{Prompt: 100, Completion: 200},
		Descriptors: []limiter.Descriptor{{Entries: []config.Entry{{Key: "api", Value: "chat"}}}}}
	rules := []config.Rule{{Stat: "ai.api_chat", Limits: []config.Limit{tokenLimit, dayTokens, promptLimit}}}
	dec := &limiter.Decision{ReservationID: "r1", Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Remaining: 700, Limits: []limiter.LimitState{
		{Limit: &rules[0].Limits[0], Remaining: 700, Charged: 300},
		{Limit: &rules[0].Limits[1], Remaining: 99700, Charged: 300},
		{Limit: &rules[0].Limits[2], Remaining: 500, Charged: 100},
	}}}}
	tel.Decided(ctx, req, rules, dec)
	// Envoy's token flow: hits charged on a token limit are reported usage.
	envoy := &limiter.Request{Domain: "ai", TokenHits: true, Descriptors: req.Descriptors}
	tel.Decided(ctx, envoy, rules, &limiter.Decision{Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Limits: []limiter.LimitState{
		{Limit: &rules[0].Limits[0], Remaining: 650, Charged: 50},
	}}}})

	tel.Reported(ctx, &limiter.ReportRequest{ReservationID: "r1", Usage: limiter.Usage{Prompt: 40, Completion: 60}}, &limiter.ReportResult{})
	tel.Reported(ctx, &limiter.ReportRequest{ReservationID: "r1", Usage: limiter.Usage{Prompt: 40, Completion: 60}}, &limiter.ReportResult{Repeated: true})
	tel.Reported(ctx, &limiter.ReportRequest{ReservationID: "gone", Domain: "ai", Usage: limiter.Usage{Prompt: 5, Completion: 6, Total: 12}}, &limiter.ReportResult{Direct: true})
	tel.Reported(ctx, &limiter.ReportRequest{Domain: "ai", Usage: limiter.Usage{Completion: 7}}, &limiter.ReportResult{Direct: true})

	want := map[string]float64{
		"sluice_decisions_total{code=ok,descriptor=ai.api_chat,domain=ai,limit=t:1m:10}": 2,
		"sluice_tokens_reserved_total{domain=ai,kind=total_tokens}":                      300,
		"sluice_tokens_reserved_total{domain=ai,kind=prompt_tokens}":                     100,
		"sluice_tokens_reported_total{domain=ai,kind=total_tokens,via=envoy_hits}":       50,
		"sluice_tokens_reported_total{domain=,kind=total_tokens,via=reservation}":        100,
		"sluice_tokens_reported_total{domain=,kind=prompt_tokens,via=reservation}":       40,
		"sluice_tokens_reported_total{domain=,kind=completion_tokens,via=reservation}":   60,
		"sluice_tokens_reported_total{domain=,kind=total_tokens,via=descriptors}":        19,
		"sluice_tokens_reported_total{domain=,kind=prompt_tokens,via=descriptors}":       5,
		"sluice_tokens_reported_total{domain=,kind=completion_tokens,via=descriptors}":   13,
		"sluice_tokens_missing_total{domain=,kind=total_tokens}":                         12,
		"sluice_tokens_missing_total{domain=,kind=prompt_tokens}":                        5,
		"sluice_tokens_missing_total{domain=,kind=completion_tokens}":                    6,
		"sluice_reports_total{via=reservation}":                                          1,
		"sluice_reports_total{via=repeated}":                                             1,
		"sluice_reports_total{via=fallback}":                                             1,
		"sluice_reports_total{via=descriptors}":                                          1,
		"sluice_config_reloads_total{}":                                                  0,
		"sluice_config_reload_errors_total{}":                                            0,
	}
	// No Configs: no report's domain can be trusted, so none is labelled.
	assertSeries(t, gathered(t, tel), want)
}

func TestCacheHitsFailedOpenAndRedisErrors(t *testing.T) {
	tel := newTestTelemetry(t)
	ctx := context.Background()
	req := &limiter.Request{Domain: "apim", Descriptors: []limiter.Descriptor{{Entries: []config.Entry{{Key: "api", Value: "A"}}}}}
	rules := []config.Rule{{Stat: "apim.api_A", Limits: []config.Limit{minuteLimit}}}
	tel.Decided(ctx, req, rules, &limiter.Decision{Over: true, Cached: true, Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Over: true}}})
	tel.Decided(ctx, req, rules, &limiter.Decision{FailedOpen: true, Statuses: []limiter.Status{{}}})
	tel.StoreCall(ctx, "window", time.Millisecond, nil)
	tel.StoreCall(ctx, "window", time.Second, &limiter.StoreError{Err: context.DeadlineExceeded})
	tel.StoreCall(ctx, "window", 0, &limiter.StoreError{Err: limiter.ErrCircuitOpen})
	tel.StoreCall(ctx, "report", time.Millisecond, errors.New("dial tcp: connection refused"))
	tel.StoreCall(ctx, "window", 3*time.Millisecond, &limiter.CallerGoneError{Err: context.DeadlineExceeded, Waited: 3 * time.Millisecond})
	tel.StoreCall(ctx, "peek", time.Millisecond, &limiter.CallerGoneError{Err: context.Canceled, Waited: time.Millisecond})
	tel.CircuitOpened()
	tel.ConfigReloaded()
	tel.ConfigReloadFailed()
	tel.ConfigReloadFailed()
	want := map[string]float64{
		"sluice_decisions_total{code=over_limit,descriptor=apim.api_A,domain=apim,limit=r:1m:10}": 1,
		"sluice_over_limit_cache_hits_total{domain=apim}":                                         1,
		"sluice_failed_open_total{domain=apim}":                                                   1,
		"sluice_redis_duration_seconds{script=window}":                                            3, // not the circuit-open one
		"sluice_redis_duration_seconds{script=report}":                                            1,
		"sluice_redis_duration_seconds{script=peek}":                                              1,
		// A caller's own deadline or departure is no Redis error.
		"sluice_redis_caller_gone_total{reason=deadline,script=window}": 1,
		"sluice_redis_caller_gone_total{reason=canceled,script=peek}":   1,
		"sluice_circuit_opens_total{}":                                  1,
		"sluice_redis_errors_total{reason=timeout,script=window}":       1,
		"sluice_redis_errors_total{reason=circuit_open,script=window}":  1,
		"sluice_redis_errors_total{reason=other,script=report}":         1,
		"sluice_config_reloads_total{}":                                 1,
		"sluice_config_reload_errors_total{}":                           2,
	}
	assertSeries(t, gathered(t, tel), want)
}

func assertSeries(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %s (want %v)", k, v)
		} else if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s = %v", k, v)
		}
	}
}

// BenchmarkObserverDecided is the per-decision cost of the metrics: one
// descriptor with two limits, admitted, no detailed metric.
func BenchmarkObserverDecided(b *testing.B) {
	tel := newTestTelemetry(b)
	req := &limiter.Request{Domain: "apim", Descriptors: []limiter.Descriptor{{Entries: []config.Entry{
		{Key: "api", Value: "PizzaShackAPI:1.0.0"}, {Key: "environment", Value: "sandbox"},
	}}}}
	rules := []config.Rule{{Stat: "apim.api_PizzaShackAPI:1.0.0.environment_sandbox", Limits: []config.Limit{minuteLimit, namedLimit}}}
	dec := &limiter.Decision{Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Remaining: 5, Limits: []limiter.LimitState{
		{Limit: &rules[0].Limits[0], Remaining: 5, Charged: 1},
		{Limit: &rules[0].Limits[1], Remaining: 1, Charged: 1}, // near limit
	}}}}
	b.Run("serial", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			tel.Decided(ctx, req, rules, dec)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				tel.Decided(ctx, req, rules, dec)
			}
		})
	})
}

// BenchmarkObserverStoreCall is the per-script-call cost, untraced.
func BenchmarkObserverStoreCall(b *testing.B) {
	tel := newTestTelemetry(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		tel.StoreCall(ctx, "window", 150*time.Microsecond, nil)
	}
}

func TestLeaseDecisionsGrantsAndUnits(t *testing.T) {
	tel := newTestTelemetry(t)
	ctx := context.Background()
	req := &limiter.Request{Domain: "apim", Descriptors: []limiter.Descriptor{{Entries: []config.Entry{{Key: "api", Value: "A"}}}}}
	rules := []config.Rule{{Stat: "apim.api_A", Limits: []config.Limit{minuteLimit}}}
	for range 3 {
		tel.Decided(ctx, req, rules, &limiter.Decision{Leased: true, Statuses: []limiter.Status{{Limit: &rules[0].Limits[0], Remaining: 9}}})
	}
	tel.LeaseActivity(ctx, "apim", limiter.LeaseActivity{Grants: 2, Granted: 40, Returned: 7})
	tel.LeaseActivity(ctx, "apim", limiter.LeaseActivity{Wasted: 3})
	tel.StoreCall(ctx, "lease", time.Millisecond, nil)
	want := map[string]float64{
		"sluice_decisions_total{code=ok,descriptor=apim.api_A,domain=apim,limit=r:1m:10}": 3,
		"sluice_lease_decisions_total{domain=apim}":                                       3,
		"sluice_lease_grants_total{domain=apim}":                                          2,
		"sluice_lease_units_total{domain=apim,event=granted}":                             40,
		"sluice_lease_units_total{domain=apim,event=returned}":                            7,
		"sluice_lease_units_total{domain=apim,event=wasted}":                              3,
		"sluice_redis_duration_seconds{script=lease}":                                     1,
		"sluice_config_reloads_total{}":                                                   0,
		"sluice_config_reload_errors_total{}":                                             0,
	}
	assertSeries(t, gathered(t, tel), want)
}
