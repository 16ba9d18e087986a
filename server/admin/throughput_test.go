package admin

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
	"github.com/sluice-rl/sluice/server/config"
	"github.com/sluice-rl/sluice/server/overlay"
)

const fileWithEverything = `
domain: apim
descriptors:
  - key: api
    value: A
    descriptors:
      - key: environment
        value: production
        shadow_mode: true
        detailed_metric: true
        metadata: {team: payments, tier: 2, share: 0.5}
        rate_limits:
          - {name: burst, window: 10s, requests: 50, lease: off}
          - {unit: hour, requests_per_unit: 10000, buckets: 60, replaces: [{name: other}]}
        token_limit: {window: 1m, total_tokens: 1000, prompt_tokens: 600}
      - key: environment
        value: sandbox
        quota_mode: true
        rate_limit: {unit: second, requests_per_unit: 3}
`

func lookup(t *testing.T, env string) (config.Rule, []config.Entry) {
	t.Helper()
	d, err := config.Parse("f.yaml", []byte(fileWithEverything))
	if err != nil {
		t.Fatal(err)
	}
	path := envPath("A", env)
	r, ok := d.Lookup(path)
	if !ok {
		t.Fatal("no rule")
	}
	return r, path
}

// TestComposeKeepsWhatThePutLeavesOut checks that a put of the token cap
// keeps every request limit, flag and metadata the file gave, and a put of
// the request cap keeps the token limits.
func TestComposeKeepsWhatThePutLeavesOut(t *testing.T) {
	cur, path := lookup(t, "production")
	tok := &sluicev1.TokenThroughput{Window: "1h", TotalTokens: proto.Int64(5)}
	lim, err := composeEnvironment(cur, nil, tok, "production", "production_tokens")
	if err != nil {
		t.Fatal(err)
	}
	o, err := overlay.Override("apim", path, lim)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := (&config.Set{}).Overlay([]*config.Override{o}).Domain("apim")
	r, _ := got.Lookup(path)
	if !reflect.DeepEqual(r.Limits[:2], cur.Limits[:2]) || r.Shadow != cur.Shadow || r.DetailedMetric != cur.DetailedMetric || !reflect.DeepEqual(r.Metadata, cur.Metadata) {
		t.Errorf("kept %+v, want the file's request limits and flags %+v", r, cur)
	}
	if len(r.Limits) != 3 || r.Limits[2].Kind != config.KindTotalTokens || r.Limits[2].Requests != 5 {
		t.Errorf("tokens %+v, want the put's", r.Limits[2:])
	}

	req := &sluicev1.RequestThroughput{Requests: proto.Int64(7), Window: "1s"}
	lim, err = composeEnvironment(cur, req, nil, "production", "production_tokens")
	if err != nil {
		t.Fatal(err)
	}
	if len(lim.RateLimits) != 1 || len(lim.TokenLimit.GetWindow()) == 0 || lim.TokenLimit.GetPromptTokens() != 600 {
		t.Errorf("composed %v", lim)
	}

	// Unlimited requests with a token cap is no request limit at all.
	sb, spath := lookup(t, "sandbox")
	lim, err = composeEnvironment(sb, &sluicev1.RequestThroughput{Unlimited: true}, nil, "sandbox", "sandbox_tokens")
	if err != nil || !lim.GetRateLimit().GetUnlimited() {
		t.Fatalf("unlimited: %v %v", lim, err)
	}
	// quota_mode stays, and refuses token limits with the file's message.
	lim, _ = composeEnvironment(sb, nil, tok, "sandbox", "sandbox_tokens")
	_, err = overlay.Override("apim", spath, lim)
	var ps config.Problems
	if !errors.As(formFields(err, "sandbox", "sandbox_tokens"), &ps) || ps[0].Field != "quota_mode" {
		t.Errorf("quota_mode with tokens: %v", err)
	}
}

func TestFormFieldsNameTheFormsParts(t *testing.T) {
	err := formFields(config.Problems{{Field: "rate_limits[0].requests", Msg: "m"}, {Field: "token_limits[0].window", Msg: "m"}, {Field: "shadow_mode", Msg: "m"}}, "sandbox", "sandbox_tokens")
	var ps config.Problems
	errors.As(err, &ps)
	if ps[0].Field != "sandbox.requests" || ps[1].Field != "sandbox_tokens.window" || ps[2].Field != "shadow_mode" {
		t.Errorf("%v", ps)
	}
}
