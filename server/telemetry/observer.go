package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/limiter"
)

// Decided counts one decision: per descriptor that met a limit, its code
// under the deciding limit; near-limit and shadow-mode hits; and the tokens
// the call reserved (usage_estimate) or charged (Envoy's token hits).
func (t *Telemetry) Decided(ctx context.Context, req *limiter.Request, rules []config.Rule, dec *limiter.Decision) {
	if dec.Cached || dec.FailedOpen || dec.Leased {
		ds := t.domains.get(req.Domain) // configured: a limit matched, or its failure_mode is open
		switch {
		case dec.Cached:
			ds.cacheHit.Add(1)
		case dec.Leased:
			ds.leased.Add(1)
		default:
			t.failedOpen.Add(ctx, 1, ds.plain...)
		}
	}
	for i := range dec.Statuses {
		st := &dec.Statuses[i]
		if st.Limit == nil || i >= len(rules) || i >= len(req.Descriptors) {
			continue // matched nothing, or unlimited
		}
		r := &rules[i]
		descriptor := r.Stat
		if r.DetailedMetric {
			descriptor = detailedName(req.Domain, req.Descriptors[i].Entries)
		}
		s := t.limits.get(limitKey{req.Domain, descriptor, limitLabel(st.Limit)})
		if st.Over {
			s.over.Add(1)
			if st.Shadow {
				t.shadow.Add(ctx, 1, s.plain...)
			}
			if st.NeverFits {
				t.neverFits.Add(ctx, 1, s.plain...)
			}
		} else {
			s.ok.Add(1)
		}
		if dec.Over {
			continue // refused: nothing was charged
		}
		for j := range st.Limits {
			ls := &st.Limits[j]
			if ls.Over || ls.Limit.Requests == 0 || ls.Remaining*5 > ls.Limit.Requests {
				continue
			}
			ns := s
			if ls.Limit != st.Limit {
				ns = t.limits.get(limitKey{req.Domain, descriptor, limitLabel(ls.Limit)})
			}
			t.nearLimit.Add(ctx, 1, ns.plain...)
		}
	}
	if !dec.Over && (dec.ReservationID != "" || req.TokenHits) {
		t.decidedTokens(ctx, req, dec)
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(
			attribute.String("sluice.domain", req.Domain),
			attribute.Bool("sluice.over_limit", dec.Over),
			attribute.Bool("sluice.reserved", dec.ReservationID != ""),
		)
	}
}

// decidedTokens counts, per token kind, the most any one limit of that kind
// reserved (or, with Envoy's token hits, charged) in this call: several
// limits of one kind (a minute and a day, an API and its environment) each
// hold the same tokens, so the call counts once.
func (t *Telemetry) decidedTokens(ctx context.Context, req *limiter.Request, dec *limiter.Decision) {
	var most [config.KindCompletionTokens + 1]int64
	for i := range dec.Statuses {
		for _, ls := range dec.Statuses[i].Limits {
			if k := ls.Limit.Kind; k.IsTokens() && ls.Charged > most[k] {
				most[k] = ls.Charged
			}
		}
	}
	var s *domainSeries
	for _, k := range tokenKinds {
		if most[k] <= 0 {
			continue
		}
		if s == nil {
			s = t.domains.get(req.Domain)
		}
		if dec.ReservationID != "" {
			t.tokensReserved.Add(ctx, most[k], s.reserved[k]...)
		} else {
			t.tokensReported.Add(ctx, most[k], s.reported[viaEnvoyHits][k]...)
		}
	}
}

// detailedName is the descriptor label of a detailed_metric descriptor:
// the domain, then key_value (or key, when the value is empty) per entry, as
// envoyproxy/ratelimit names its detailed stats.
func detailedName(domain string, entries []config.Entry) string {
	n := len(domain)
	for _, e := range entries {
		n += 2 + len(e.Key) + len(e.Value)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(domain)
	for _, e := range entries {
		b.WriteByte('.')
		b.WriteString(e.Key)
		if e.Value != "" {
			b.WriteByte('_')
			b.WriteString(e.Value)
		}
	}
	return b.String()
}

// Reported counts one successful report and the tokens it reported.
func (t *Telemetry) Reported(ctx context.Context, req *limiter.ReportRequest, res *limiter.ReportResult) {
	v := viaReservation
	switch {
	case res.Repeated:
		v = viaRepeated
	case res.Direct && req.ReservationID != "":
		v = viaFallback
	case res.Direct:
		v = viaDescriptors
	}
	t.reports.Add(ctx, 1, t.reportV[v]...)
	if v == viaRepeated {
		return // nothing changed
	}
	total := req.Usage.Total
	if total == 0 {
		total = req.Usage.Prompt + req.Usage.Completion
	}
	amounts := [config.KindCompletionTokens + 1]uint64{
		config.KindTotalTokens:      total,
		config.KindPromptTokens:     req.Usage.Prompt,
		config.KindCompletionTokens: req.Usage.Completion,
	}
	domain := ""
	if t.configs != nil {
		if _, ok := t.configs().Domain(req.Domain); ok {
			domain = req.Domain
		}
	}
	s := t.domains.get(domain)
	rv := v
	if v == viaFallback {
		rv = viaDescriptors
	}
	for _, k := range tokenKinds {
		if amounts[k] == 0 {
			continue
		}
		t.tokensReported.Add(ctx, int64(amounts[k]), s.reported[rv][k]...)
		if v == viaFallback {
			t.tokensMissing.Add(ctx, int64(amounts[k]), s.missing[k]...)
		}
	}
}

// LeaseActivity counts what lease calls did on one domain's counters.
func (t *Telemetry) LeaseActivity(ctx context.Context, domain string, a limiter.LeaseActivity) {
	s := t.domains.get(domain) // configured: its limits were leased
	if a.Grants > 0 {
		t.leaseGrants.Add(ctx, int64(a.Grants), s.plain...)
	}
	for e, n := range [numLeaseEvents]uint64{leaseGranted: a.Granted, leaseReturned: a.Returned, leaseWasted: a.Wasted} {
		if n > 0 {
			t.leaseUnits.Add(ctx, int64(n), s.lease[e]...)
		}
	}
}

// StoreCall records one Redis script call: its duration, its error, and — when
// the call is traced — a span for it, child of the call's span.
// A call the circuit breaker kept from Redis counts as an error (reason
// circuit_open) and nothing else: Redis was not called. A call its caller
// ended too soon to blame Redis (a limiter.CallerGoneError) is no Redis
// error: it counts in sluice_redis_caller_gone_total and is not logged.
func (t *Telemetry) StoreCall(ctx context.Context, script string, took time.Duration, err error) {
	s := t.scripts.get(script)
	var gone *limiter.CallerGoneError
	switch {
	case errors.As(err, &gone):
		r := goneDeadline
		if errors.Is(gone.Err, context.Canceled) {
			r = goneCanceled
		}
		t.callerGone.Add(ctx, 1, s.gone[r]...)
	case err != nil:
		r := errorReason(err)
		t.redisErrors.Add(ctx, 1, s.errors[r]...)
		if r == reasonCircuitOpen {
			return
		}
		t.logRedisError(ctx, script, err)
	}
	t.redisDuration.Record(ctx, took.Seconds(), s.record...)
	if parent := trace.SpanFromContext(ctx); parent.IsRecording() {
		end := time.Now()
		_, span := t.tracer.Start(ctx, s.spanName,
			trace.WithTimestamp(end.Add(-took)),
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(s.spanAttr...))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End(trace.WithTimestamp(end))
	}
}

// CircuitOpened counts an opening of the circuit breaker.
func (t *Telemetry) CircuitOpened() { t.circuitOpens.Add(context.Background(), 1, t.noAttrs...) }

// errorReason classifies a failed script call.
func errorReason(err error) reason {
	var ne net.Error
	switch {
	case errors.Is(err, limiter.ErrCircuitOpen):
		return reasonCircuitOpen
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	}
	return reasonOther
}

// logRedisError logs a failed script call, at most once a second: a Redis
// outage fails every call, and the metric counts them all.
func (t *Telemetry) logRedisError(ctx context.Context, script string, err error) {
	ok, suppressed := t.redisLog.Allow(time.Now())
	if !ok {
		return
	}
	t.log.LogAttrs(ctx, slog.LevelWarn, "redis script failed",
		slog.String("script", script), slog.Any("err", err),
		slog.Int64("suppressed_since_last", suppressed))
}
