package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	"github.com/sluice-rl/sluice/internal/sluicetest"
	"github.com/sluice-rl/sluice/internal/syncbuf"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// telemetryConfig has a cap to reach, a shadow-mode cap, a token limit, and
// two key-only descriptors: one asks for per-value metrics, one does not.
const telemetryConfig = `
domain: tel
descriptors:
  - key: api
    value: capped
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: api
    value: shadowed
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: api
    value: chat
    token_limit: {unit: minute, total_tokens: 1000}
  - key: user
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 100, name: per-user}
  - key: client
    rate_limit: {unit: minute, requests_per_unit: 100}
`

func telDescriptors(kv ...string) []*sluicev1.Descriptor {
	var out []*sluicev1.Descriptor
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &sluicev1.Descriptor{Entries: []*sluicev1.Entry{{Key: kv[i], Value: kv[i+1]}}})
	}
	return out
}

// scrape GETs /metrics and returns every sluice_ series as
// "name{label=value,...}" (labels sorted) → value; a histogram gives its
// sample count. raw is the whole text.
func scrape(t *testing.T, s *sluice) (series map[string]float64, raw string) {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	series = map[string]float64{}
	for name, f := range fams {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			v := -1.0
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				v = float64(m.GetHistogram().GetSampleCount())
			}
			series[name+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return series, string(body)
}

// waitMetric scrapes until the series reads want.
func waitMetric(t *testing.T, s *sluice, key string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, _ := scrape(t, s)
		if got[key] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %v (last %v)", key, want, got[key])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetricsAfterDecisionsReportsReloadsAndARedisError(t *testing.T) {
	rs := redistest.New(t)
	path := writeConfig(t, telemetryConfig)
	s := startSluice(t, path, rs.URL())
	client := sluicev1.NewRateLimitServiceClient(dial(t, s))
	ctx := context.Background()
	check := func(want sluicev1.Code, req *sluicev1.ShouldRateLimitRequest) *sluicev1.ShouldRateLimitResponse {
		t.Helper()
		resp, err := client.ShouldRateLimit(ctx, req)
		if err != nil {
			t.Fatalf("ShouldRateLimit: %v", err)
		}
		if resp.GetOverallCode() != want {
			t.Fatalf("ShouldRateLimit: %v, want %v", resp.GetOverallCode(), want)
		}
		return resp
	}
	report := func(req *sluicev1.ReportUsageRequest) {
		t.Helper()
		if _, err := client.ReportUsage(ctx, req); err != nil {
			t.Fatalf("ReportUsage: %v", err)
		}
	}

	// Admit twice, refuse once; the second admission used the whole cap.
	capped := &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: telDescriptors("api", "capped")}
	check(sluicev1.Code_OK, capped)
	check(sluicev1.Code_OK, capped)
	check(sluicev1.Code_OVER_LIMIT, capped)
	// Shadow mode: the second call is over the limit but not refused.
	shadowed := &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: telDescriptors("api", "shadowed")}
	check(sluicev1.Code_OK, shadowed)
	if st := check(sluicev1.Code_OK, shadowed).GetStatuses()[0]; st.GetCode() != sluicev1.Code_OVER_LIMIT || !st.GetShadowMode() {
		t.Fatalf("shadowed status: %v", st)
	}
	// Tokens: reserve 300 and report 100 by reservation (twice: the repeat
	// changes nothing); report 11 against an unknown reservation, which
	// falls back to the descriptors; reserve 100 and never report them.
	chat := telDescriptors("api", "chat")
	res := check(sluicev1.Code_OK, &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: chat,
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 100, CompletionTokens: 200}})
	if res.GetReservationId() == "" {
		t.Fatal("no reservation")
	}
	used := &sluicev1.Usage{PromptTokens: 40, CompletionTokens: 60}
	report(&sluicev1.ReportUsageRequest{ReservationId: res.GetReservationId(), Usage: used})
	report(&sluicev1.ReportUsageRequest{ReservationId: res.GetReservationId(), Usage: used})
	report(&sluicev1.ReportUsageRequest{ReservationId: strings.Repeat("0f", 16), Domain: "tel", Descriptors: chat,
		Usage: &sluicev1.Usage{PromptTokens: 5, CompletionTokens: 6}})
	check(sluicev1.Code_OK, &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: chat,
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 50, CompletionTokens: 50}})
	usage, err := client.GetUsage(ctx, &sluicev1.GetUsageRequest{Domain: "tel", Descriptors: chat})
	if err != nil {
		t.Fatal(err)
	}
	if got := usage.GetDescriptors()[0].GetLimits()[0].GetReserved(); got != 100 {
		t.Errorf("GetUsage reserved %d, want the 100 never reported", got)
	}
	// Values: alice is labelled (detailed_metric), bob is not.
	check(sluicev1.Code_OK, &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: telDescriptors("user", "alice", "client", "bob")})

	// A reload, then a broken one.
	if err := os.WriteFile(path, []byte(telemetryConfig+"# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, "sluice_config_reloads_total{}", 1)
	if err := os.WriteFile(path, []byte("domain: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, s, "sluice_config_reload_errors_total{}", 1)

	// Redis goes away.
	if err := rs.Stop(); err != nil {
		t.Fatal(err)
	}
	// (Not capped: the replica remembers that refusal and answers it from
	// memory.)
	down := &sluicev1.ShouldRateLimitRequest{Domain: "tel", Descriptors: telDescriptors("client", "bob")}
	if _, err := client.ShouldRateLimit(ctx, down); status.Code(err) != codes.Unavailable {
		t.Fatalf("with Redis down: %v, want Unavailable", err)
	}

	got, raw := scrape(t, s)
	// How a dead Redis fails (refused at once, or a deadline) varies; that it
	// is counted once does not.
	var redisErrors float64
	for k, v := range got {
		if strings.HasPrefix(k, "sluice_redis_errors_total{") {
			if k != "sluice_redis_errors_total{reason=other,script=window}" && k != "sluice_redis_errors_total{reason=timeout,script=window}" {
				t.Errorf("unexpected %s", k)
			}
			redisErrors += v
			delete(got, k)
		}
	}
	if redisErrors != 1 {
		t.Errorf("redis errors: %v, want 1", redisErrors)
	}
	const (
		srl = "method=sluice.v1.RateLimitService/ShouldRateLimit"
		ru  = "method=sluice.v1.RateLimitService/ReportUsage"
		gu  = "method=sluice.v1.RateLimitService/GetUsage"
	)
	assertSeries(t, got, map[string]float64{
		"sluice_decisions_total{code=ok,descriptor=tel.api_capped,domain=tel,limit=r:1m:10}":         2,
		"sluice_decisions_total{code=over_limit,descriptor=tel.api_capped,domain=tel,limit=r:1m:10}": 1,
		"sluice_near_limit_total{descriptor=tel.api_capped,domain=tel,limit=r:1m:10}":                1,

		"sluice_decisions_total{code=ok,descriptor=tel.api_shadowed,domain=tel,limit=r:1m:10}":         1,
		"sluice_decisions_total{code=over_limit,descriptor=tel.api_shadowed,domain=tel,limit=r:1m:10}": 1,
		"sluice_near_limit_total{descriptor=tel.api_shadowed,domain=tel,limit=r:1m:10}":                1,
		"sluice_shadow_mode_total{descriptor=tel.api_shadowed,domain=tel,limit=r:1m:10}":               1,

		"sluice_decisions_total{code=ok,descriptor=tel.api_chat,domain=tel,limit=t:1m:10}":    2,
		"sluice_tokens_reserved_total{domain=tel,kind=total_tokens}":                          400,
		"sluice_tokens_reported_total{domain=,kind=total_tokens,via=reservation}":             100,
		"sluice_tokens_reported_total{domain=,kind=prompt_tokens,via=reservation}":            40,
		"sluice_tokens_reported_total{domain=,kind=completion_tokens,via=reservation}":        60,
		"sluice_tokens_reported_total{domain=tel,kind=total_tokens,via=descriptors}":          11,
		"sluice_tokens_reported_total{domain=tel,kind=prompt_tokens,via=descriptors}":         5,
		"sluice_tokens_reported_total{domain=tel,kind=completion_tokens,via=descriptors}":     6,
		"sluice_tokens_missing_total{domain=tel,kind=total_tokens}":                           11,
		"sluice_tokens_missing_total{domain=tel,kind=prompt_tokens}":                          5,
		"sluice_tokens_missing_total{domain=tel,kind=completion_tokens}":                      6,
		"sluice_reports_total{via=reservation}":                                               1,
		"sluice_reports_total{via=repeated}":                                                  1,
		"sluice_reports_total{via=fallback}":                                                  1,
		"sluice_decisions_total{code=ok,descriptor=tel.user_alice,domain=tel,limit=per-user}": 1,
		"sluice_decisions_total{code=ok,descriptor=tel.client,domain=tel,limit=r:1m:10}":      1,
		"sluice_config_reloads_total{}":                                                       1,
		"sluice_config_reload_errors_total{}":                                                 1,
		"sluice_call_duration_seconds{code=OK," + srl + "}":                                   8,
		"sluice_call_duration_seconds{code=Unavailable," + srl + "}":                          1,
		"sluice_call_duration_seconds{code=OK," + ru + "}":                                    3,
		"sluice_call_duration_seconds{code=OK," + gu + "}":                                    1,
		"sluice_redis_duration_seconds{script=window}":                                        8, // 7 decisions/charges and the failed one
		"sluice_redis_duration_seconds{script=reserve}":                                       2,
		"sluice_redis_duration_seconds{script=report}":                                        3,
		"sluice_redis_duration_seconds{script=peek}":                                          1,
	})
	if !strings.Contains(raw, `descriptor="tel.user_alice"`) {
		t.Error("the detailed_metric descriptor's value is not in a label")
	}
	if strings.Contains(raw, "bob") {
		t.Error("a descriptor value without detailed_metric made it into the metrics")
	}
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

func TestTraceHasTheRedisScriptSpanInsideTheCallSpanAndLogsCarryTheTraceID(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	logs := &syncbuf.Buffer{}
	cfg := server.Config{
		ConfigPath: writeConfig(t, apimConfig), TracerProvider: tp,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	srv := sluicetest.Start(t, cfg) // the embedded store runs the same scripts

	// The caller traces too: its span context reaches the server as a W3C
	// traceparent.
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{}))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := sluicev1.NewRateLimitServiceClient(conn).ShouldRateLimit(context.Background(), sandboxRequest()); err != nil {
		t.Fatal(err)
	}

	const callName = "sluice.v1.RateLimitService/ShouldRateLimit"
	var call, client, script tracetest.SpanStub
	deadline := time.Now().Add(5 * time.Second)
	for call.Name == "" || script.Name == "" || client.Name == "" {
		if time.Now().After(deadline) {
			t.Fatalf("spans: %v", spanNames(exp.GetSpans()))
		}
		time.Sleep(10 * time.Millisecond)
		for _, s := range exp.GetSpans() {
			switch {
			case s.Name == callName && s.SpanKind == trace.SpanKindServer:
				call = s
			case s.Name == callName && s.SpanKind == trace.SpanKindClient:
				client = s
			case s.Name == "redis window":
				script = s
			}
		}
	}
	if call.Parent.SpanID() != client.SpanContext.SpanID() || call.SpanContext.TraceID() != client.SpanContext.TraceID() {
		t.Errorf("call span's parent %v, want the caller's span %v", call.Parent, client.SpanContext)
	}
	if script.Parent.SpanID() != call.SpanContext.SpanID() || script.SpanContext.TraceID() != call.SpanContext.TraceID() {
		t.Errorf("script span's parent %v, want the call span %v", script.Parent, call.SpanContext)
	}
	if script.StartTime.Before(call.StartTime) || script.EndTime.After(call.EndTime) {
		t.Errorf("script span [%v, %v] not inside the call span [%v, %v]", script.StartTime, script.EndTime, call.StartTime, call.EndTime)
	}

	// An HTTP caller's traceparent reaches the call span too.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, "http://"+srv.HTTPAddr()+"/v1/ratelimit:check", strings.NewReader(sandboxCheck("apim")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	for deadline := time.Now().Add(5 * time.Second); ; {
		var seen bool
		for _, s := range exp.GetSpans() {
			seen = seen || s.Name == callName && s.SpanContext.TraceID().String() == traceID && s.Parent.SpanID().String() == "00f067aa0ba902b7"
		}
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call span continues the HTTP caller's trace: %v", spanNames(exp.GetSpans()))
		}
		time.Sleep(10 * time.Millisecond)
	}

	var found bool
	for line := range strings.SplitSeq(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "call" || rec["method"] != "/"+callName {
			continue
		}
		if rec["trace_id"] == nil {
			t.Errorf("call log without a trace id: %v", rec)
		}
		found = found || rec["trace_id"] == call.SpanContext.TraceID().String() && rec["span_id"] == call.SpanContext.SpanID().String()
	}
	if !found {
		t.Errorf("no call log line with trace_id %s span_id %s in:\n%s", call.SpanContext.TraceID(), call.SpanContext.SpanID(), logs.String())
	}
}

func spanNames(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	return names
}
