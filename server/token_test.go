package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/internal/redistest"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server"
)

// tokenConfig caps each API's production tokens per minute (three kinds) and
// its sandbox total per second; every test uses its own API name.
const tokenConfig = `
domain: ai
descriptors:
  - key: api
    descriptors:
      - key: environment
        value: production
        rate_limit: {unit: second, requests_per_unit: 1000}
        token_limit: {window: 1m, total_tokens: 1000, prompt_tokens: 600, completion_tokens: 500}
      - key: environment
        value: sandbox
        token_limit: {window: 1s, total_tokens: 1000}
  - key: plain
    rate_limit: {unit: minute, requests_per_unit: 10}
`

func aiDescriptors(api, env string) []*sluicev1.Descriptor {
	return []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "api", Value: api}, {Key: "environment", Value: env}}}}
}

// tokens is what GetUsage says of one token kind.
type tokens struct{ used, reserved, remaining uint64 }

type tokenClient struct {
	t *testing.T
	c sluicev1.RateLimitServiceClient
}

func (tc tokenClient) reserve(api, env string, prompt, completion uint64) *sluicev1.ShouldRateLimitResponse {
	tc.t.Helper()
	resp, err := tc.c.ShouldRateLimit(context.Background(), &sluicev1.ShouldRateLimitRequest{
		Domain: "ai", Descriptors: aiDescriptors(api, env),
		UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: prompt, CompletionTokens: completion},
	})
	if err != nil {
		tc.t.Fatalf("ShouldRateLimit: %v", err)
	}
	return resp
}

func (tc tokenClient) report(id string, prompt, completion uint64) *sluicev1.ReportUsageResponse {
	tc.t.Helper()
	resp, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{
		ReservationId: id, Usage: &sluicev1.Usage{PromptTokens: prompt, CompletionTokens: completion},
	})
	if err != nil {
		tc.t.Fatalf("ReportUsage: %v", err)
	}
	return resp
}

// usage reads the counters of one API's environment by token kind.
func (tc tokenClient) usage(api, env string) map[sluicev1.LimitKind]tokens {
	tc.t.Helper()
	resp, err := tc.c.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "ai", Descriptors: aiDescriptors(api, env)})
	if err != nil {
		tc.t.Fatalf("GetUsage: %v", err)
	}
	out := map[sluicev1.LimitKind]tokens{}
	for _, l := range resp.Descriptors[0].Limits {
		out[l.Limit.Kind] = tokens{l.Used, l.Reserved, l.Remaining}
	}
	return out
}

func (tc tokenClient) wantUsage(api, env string, want map[sluicev1.LimitKind]tokens) {
	tc.t.Helper()
	got := tc.usage(api, env)
	for kind, w := range want {
		if got[kind] != w {
			tc.t.Errorf("%s %s %v: {used reserved remaining} = %v, want %v", api, env, kind, got[kind], w)
		}
	}
}

const (
	total      = sluicev1.LimitKind_TOTAL_TOKENS
	prompt     = sluicev1.LimitKind_PROMPT_TOKENS
	completion = sluicev1.LimitKind_COMPLETION_TOKENS
)

func startTokenSluice(t *testing.T) tokenClient {
	rs := redistest.New(t)
	s := startSluice(t, writeConfig(t, tokenConfig), rs.URL())
	return tokenClient{t, sluicev1.NewRateLimitServiceClient(dial(t, s))}
}

func TestTokenReservationLifecycle(t *testing.T) {
	tc := startTokenSluice(t)

	t.Run("reserve", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		resp := tc.reserve("reserve", "production", 100, 200)
		if resp.OverallCode != sluicev1.Code_OK || len(resp.ReservationId) != 32 {
			t.Fatalf("reserve: %v", resp)
		}
		reserved := map[sluicev1.LimitKind]uint64{}
		for _, l := range resp.Statuses[0].Limits {
			reserved[l.Limit.Kind] = l.Reserved
		}
		if reserved[total] != 300 || reserved[prompt] != 100 || reserved[completion] != 200 {
			t.Errorf("reserved per kind %v, want 300/100/200", reserved)
		}
		tc.wantUsage("reserve", "production", map[sluicev1.LimitKind]tokens{
			total: {300, 300, 700}, prompt: {100, 100, 500}, completion: {200, 200, 300},
		})
	})

	t.Run("report less", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		id := tc.reserve("less", "production", 100, 200).ReservationId
		tc.report(id, 80, 50)
		tc.wantUsage("less", "production", map[sluicev1.LimitKind]tokens{
			total: {130, 0, 870}, prompt: {80, 0, 520}, completion: {50, 0, 450},
		})
	})

	t.Run("report more, past the limit", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		id := tc.reserve("more", "production", 100, 100).ReservationId
		tc.report(id, 100, 450)
		tc.wantUsage("more", "production", map[sluicev1.LimitKind]tokens{
			total: {550, 0, 450}, prompt: {100, 0, 500}, completion: {450, 0, 50},
		})
		id = tc.reserve("more", "production", 0, 10).ReservationId
		resp := tc.report(id, 0, 300)
		var over bool
		for _, l := range resp.Limits {
			if l.Limit.Kind == completion {
				over = l.Code == sluicev1.Code_OVER_LIMIT
			}
		}
		if !over {
			t.Errorf("report past the completion limit not marked over: %v", resp)
		}
		tc.wantUsage("more", "production", map[sluicev1.LimitKind]tokens{completion: {750, 0, 0}})
		next := tc.reserve("more", "production", 1, 1)
		if next.OverallCode != sluicev1.Code_OVER_LIMIT || next.ReservationId != "" {
			t.Fatalf("call after usage went over: %v", next)
		}
		if k := next.Statuses[0].CurrentLimit.Kind; k != completion {
			t.Errorf("deciding limit %v, want COMPLETION_TOKENS", k)
		}
	})

	t.Run("report twice", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		id := tc.reserve("twice", "production", 100, 200).ReservationId
		first := tc.report(id, 50, 60)
		second := tc.report(id, 500, 500)
		if first.String() != second.String() {
			t.Errorf("second report answered differently:\n%v\n%v", first, second)
		}
		tc.wantUsage("twice", "production", map[sluicev1.LimitKind]tokens{
			total: {110, 0, 890}, prompt: {50, 0, 550}, completion: {60, 0, 440},
		})
	})

	t.Run("never reported", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		tc.reserve("never", "production", 100, 200)
		tc.reserve("never", "production", 10, 20)
		tc.wantUsage("never", "production", map[sluicev1.LimitKind]tokens{
			total: {330, 330, 670}, prompt: {110, 110, 490}, completion: {220, 220, 280},
		})
	})

	t.Run("report after the reservation left the window", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		id := tc.reserve("late", "sandbox", 100, 200).ReservationId
		tc.wantUsage("late", "sandbox", map[sluicev1.LimitKind]tokens{total: {300, 300, 700}})
		time.Sleep(1200 * time.Millisecond) // the 1s window plus its 100ms bucket
		tc.wantUsage("late", "sandbox", map[sluicev1.LimitKind]tokens{total: {0, 0, 1000}})
		tc.report(id, 200, 300)
		tc.wantUsage("late", "sandbox", map[sluicev1.LimitKind]tokens{total: {500, 0, 500}})
	})

	t.Run("estimate above the whole limit takes what remains", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		tc.report(tc.reserve("huge", "production", 100, 0).ReservationId, 100, 0)
		resp := tc.reserve("huge", "production", 700, 0)
		if resp.OverallCode != sluicev1.Code_OK || resp.ReservationId == "" {
			t.Fatalf("an estimate above the 600 prompt limit was refused: %v", resp)
		}
		tc.wantUsage("huge", "production", map[sluicev1.LimitKind]tokens{prompt: {600, 500, 0}})
		if r := tc.reserve("huge", "production", 1, 0); r.OverallCode != sluicev1.Code_OVER_LIMIT {
			t.Errorf("the limit is taken whole, yet: %v", r)
		}
		tc.report(resp.ReservationId, 650, 0)
		tc.wantUsage("huge", "production", map[sluicev1.LimitKind]tokens{prompt: {750, 0, 0}})
	})

	t.Run("no estimate checks and reserves nothing", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		resp, err := tc.c.ShouldRateLimit(context.Background(), &sluicev1.ShouldRateLimitRequest{Domain: "ai", Descriptors: aiDescriptors("none", "production")})
		if err != nil || resp.OverallCode != sluicev1.Code_OK || resp.ReservationId != "" {
			t.Fatalf("%v %v", resp, err)
		}
		tc.wantUsage("none", "production", map[sluicev1.LimitKind]tokens{total: {0, 0, 1000}})
	})

	t.Run("estimate without token limits reserves nothing", func(t *testing.T) {
		resp, err := tc.c.ShouldRateLimit(context.Background(), &sluicev1.ShouldRateLimitRequest{
			Domain: "ai", Descriptors: []*sluicev1.Descriptor{{Entries: []*sluicev1.Entry{{Key: "plain", Value: "x"}}}},
			UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 5},
		})
		if err != nil || resp.OverallCode != sluicev1.Code_OK || resp.ReservationId != "" {
			t.Fatalf("%v %v", resp, err)
		}
	})

	t.Run("unknown reservation", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		unknown := strings.Repeat("ab", 16)
		_, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{ReservationId: unknown, Usage: &sluicev1.Usage{PromptTokens: 1}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("unknown reservation: %v, want NotFound", err)
		}
		resp, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{
			ReservationId: unknown, Usage: &sluicev1.Usage{PromptTokens: 40, CompletionTokens: 2},
			Domain: "ai", Descriptors: aiDescriptors("fallback", "production"),
		})
		if err != nil || !resp.ChargedDirectly {
			t.Fatalf("fallback to descriptors: %v %v", resp, err)
		}
		tc.wantUsage("fallback", "production", map[sluicev1.LimitKind]tokens{
			total: {42, 0, 958}, prompt: {40, 0, 560}, completion: {2, 0, 498},
		})
	})

	t.Run("bad input names the field and charges nothing", func(t *testing.T) {
		tc := tokenClient{t, tc.c}
		for _, c := range []struct {
			call  func() error
			field string
		}{
			{func() error {
				_, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{ReservationId: "not-an-id", Usage: &sluicev1.Usage{}})
				return err
			}, "reservation_id"},
			{func() error {
				_, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{Usage: &sluicev1.Usage{PromptTokens: 1}})
				return err
			}, "reservation_id"},
			{func() error {
				_, err := tc.c.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{
					Usage: &sluicev1.Usage{CompletionTokens: 2_000_000_000}, Domain: "ai", Descriptors: aiDescriptors("bad", "production"),
				})
				return err
			}, "usage.completion_tokens"},
			{func() error {
				_, err := tc.c.ShouldRateLimit(context.Background(), &sluicev1.ShouldRateLimitRequest{
					Domain: "ai", Descriptors: aiDescriptors("bad", "production"),
					UsageEstimate: &sluicev1.UsageEstimate{PromptTokens: 1_000_000_001},
				})
				return err
			}, "usage_estimate.prompt_tokens"},
		} {
			err := c.call()
			if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), c.field+":") {
				t.Errorf("%v, want InvalidArgument naming %s", err, c.field)
			}
		}
		tc.wantUsage("bad", "production", map[sluicev1.LimitKind]tokens{total: {0, 0, 1000}})
	})
}

func TestReservationRecordsExpire(t *testing.T) {
	rs := redistest.New(t)
	s := startSluiceWith(t, server.Config{ConfigPath: writeConfig(t, tokenConfig), RedisURL: rs.URL(), ReservationGrace: 300 * time.Millisecond})
	tc := tokenClient{t, sluicev1.NewRateLimitServiceClient(dial(t, s))}
	rdb := redistest.Client(t, rs)
	ctx := context.Background()
	tc.reserve("expire", "sandbox", 10, 20)
	tc.report(tc.reserve("expire", "sandbox", 10, 20).ReservationId, 5, 5)
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var records, reserved int
	for _, k := range keys {
		switch {
		case strings.Contains(k, ":res:"):
			records++
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 || ttl > 1300*time.Millisecond {
				t.Errorf("record %s has TTL %v, want the 1s window plus 300ms grace at most", k, ttl)
			}
		case strings.HasSuffix(k, ":rsv"):
			reserved++
		}
	}
	if records != 2 || reserved != 1 {
		t.Fatalf("keys %v: want 2 reservation records and 1 reserved-amounts hash", keys)
	}
	time.Sleep(1500 * time.Millisecond)
	left, _ := rdb.Keys(ctx, "*").Result()
	var counters []string
	for _, k := range left {
		// The per-second traffic counts of the console (server/traffic)
		// live for minutes, with a TTL of their own.
		if strings.Contains(k, "{traffic|") || strings.HasSuffix(k, ":probe:{readiness}") { // the readiness probe's counter too
			if ttl := rdb.PTTL(ctx, k).Val(); ttl <= 0 {
				t.Errorf("traffic key %s has no TTL (%v)", k, ttl)
			}
			continue
		}
		counters = append(counters, k)
	}
	if len(counters) != 0 {
		t.Errorf("after the window and the grace period these keys are left: %v", counters)
	}
}
