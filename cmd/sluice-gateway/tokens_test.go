package main

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluice-rl/sluice/client"
	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// needTokens skips the test while the server answers ReportUsage with
// Unimplemented (token limits landing in server/).
func needTokens(t *testing.T, api sluicev1.RateLimitServiceClient) {
	t.Helper()
	_, err := api.ReportUsage(context.Background(), &sluicev1.ReportUsageRequest{
		Usage:       &sluicev1.Usage{PromptTokens: 1},
		Domain:      "apim",
		Descriptors: []*sluicev1.Descriptor{apiDescriptor("NoSuchAPI:0", "production")},
	})
	if status.Code(err) == codes.Unimplemented {
		t.Skip("needs server token support")
	}
}

// tokenUsage is what Sluice counts for ChatAPI in env, per limit kind, and
// what of it is still reserved.
func tokenUsage(t *testing.T, api sluicev1.RateLimitServiceClient, env string) (used map[sluicev1.LimitKind]uint64, reserved uint64) {
	t.Helper()
	resp, err := api.GetUsage(context.Background(), &sluicev1.GetUsageRequest{Domain: "apim",
		Descriptors: []*sluicev1.Descriptor{apiDescriptor("ChatAPI:1.0.0", env)}})
	if err != nil {
		t.Fatalf("GetUsage: %v", err)
	}
	used = map[sluicev1.LimitKind]uint64{}
	for _, l := range resp.GetDescriptors()[0].GetLimits() {
		used[l.GetLimit().GetKind()] = l.GetUsed()
		reserved += l.GetReserved()
	}
	return used, reserved
}

// settled waits until nothing is reserved any more: every report is in.
func settled(t *testing.T, api sluicev1.RateLimitServiceClient, env string) map[sluicev1.LimitKind]uint64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		used, reserved := tokenUsage(t, api, env)
		if reserved == 0 {
			return used
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d tokens still reserved after 5s: the reports did not arrive", env, reserved)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReportedUsageEqualsTheBackends(t *testing.T) {
	s := startSluice(t)
	api := s.api(t)
	needTokens(t, api)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	var want client.Usage
	for _, tc := range []struct{ name, path, body string }{
		{"chat json", "/v1/chat/completions", `{"model":"m","max_tokens":20,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"what is a sluice?"}]}`},
		{"chat stream", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[{"role":"user","content":"and a gate?"}]}`},
		{"responses json", "/v1/responses", `{"model":"m","input":"describe a weir in one line","max_output_tokens":30}`},
		{"responses stream", "/v1/responses", `{"model":"m","stream":true,"input":"and a lock?"}`},
	} {
		a := call(t, g, http.MethodPost, "/chat/1.0.0"+tc.path, "sandbox-key-1", tc.body)
		if a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tc.name, a.status, a.body)
		}
		u := b.sandbox.Usage([]byte(tc.body))
		want.PromptTokens += u.PromptTokens
		want.CompletionTokens += u.CompletionTokens
		want.TotalTokens += u.TotalTokens
		got := settled(t, api, "sandbox")
		if got[sluicev1.LimitKind_PROMPT_TOKENS] != want.PromptTokens ||
			got[sluicev1.LimitKind_COMPLETION_TOKENS] != want.CompletionTokens ||
			got[sluicev1.LimitKind_TOTAL_TOKENS] != want.TotalTokens {
			t.Errorf("after %s: sluice counts %v, the backend said %+v", tc.name, got, want)
		}
	}
	if used, _ := tokenUsage(t, api, "production"); used[sluicev1.LimitKind_TOTAL_TOKENS] != 0 {
		t.Errorf("production charged %d tokens by sandbox calls", used[sluicev1.LimitKind_TOTAL_TOKENS])
	}
}

func TestTokenCapAnswers503WithTheFault(t *testing.T) {
	s := startSluice(t)
	api := s.api(t)
	needTokens(t, api)
	b := startBackends(t)
	g := startGateway(t, gatewayConfig(s.srv.GRPCAddr(), "closed", b))

	const body = `{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"hello there"}]}`
	per := b.prod.Usage([]byte(body)).Total()
	for i := 1; i <= 100/int(per)+2; i++ {
		a := call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "prod-key-1", body)
		if a.status == http.StatusOK {
			settled(t, api, "production")
			continue
		}
		if a.status != http.StatusServiceUnavailable || a.body != faultBody {
			t.Fatalf("call %d: %d %q, want 200 or 503 with the fault", i, a.status, a.body)
		}
		if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("token cap: Retry-After %q", a.header.Get("Retry-After"))
		}
		if got := b.prod.Calls(); got != int64(i-1) {
			t.Errorf("backend saw %d calls, want %d: the refused one reached it", got, i-1)
		}
		used, _ := tokenUsage(t, api, "production")
		if total := used[sluicev1.LimitKind_TOTAL_TOKENS]; total != uint64(i-1)*per {
			t.Errorf("sluice counts %d tokens after %d calls of %d", total, i-1, per)
		}
		if i < 2 {
			t.Errorf("refused the first call")
		}
		// Sandbox has its own token cap.
		if a := call(t, g, http.MethodPost, "/chat/1.0.0/v1/chat/completions", "sandbox-key-1", body); a.status != http.StatusOK {
			t.Errorf("sandbox with production full: %d %s", a.status, a.body)
		}
		return
	}
	t.Fatalf("no 503 after %d tokens", b.prod.Calls()*int64(per))
}
