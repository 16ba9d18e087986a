package config

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// loc is where a problem is expected: line, field and a part of its message.
type loc struct {
	line  int
	field string
	msg   string
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []loc
	}{
		{"empty file", "", []loc{{0, "", "empty file"}}},
		{"only comments", "# nothing\n", []loc{{0, "", "empty file"}}},
		{"missing domain", "descriptors: []\n", []loc{{1, "domain", "missing"}}},
		{"empty domain", "domain: ''\n", []loc{{1, "domain", "must not be empty"}}},
		{"domain not a string", "domain: [a]\n", []loc{{1, "domain", "must be a string"}}},
		{"root not a mapping", "- a\n", []loc{{1, "", "must be a mapping"}}},
		{"syntax error", "domain: a\n  b: : c\n", []loc{{2, "", "invalid yaml"}}},
		{"two documents", "domain: a\n---\ndomain: b\n", []loc{{3, "", "more than one yaml document"}}},
		{"unknown root key", "domain: a\ndescriptor: []\n", []loc{{2, "descriptor", `unknown key (did you mean "descriptors"?)`}}},
		{"duplicate yaml key", "domain: a\ndomain: b\n", []loc{{2, "domain", "duplicate key (first on line 1)"}}},
		{"descriptors not a list", "domain: a\ndescriptors: {key: x}\n", []loc{{2, "descriptors", "must be a list"}}},
		{"descriptor not a mapping", "domain: a\ndescriptors:\n  - x\n", []loc{{3, "descriptors[0]", "must be a mapping"}}},
		{"missing key", `
domain: a
descriptors:
  - value: x
    rate_limit: {unit: second, requests_per_unit: 1}
`, []loc{{4, "descriptors[0].key", "missing"}}},
		{"empty key", "domain: a\ndescriptors:\n  - key: ''\n", []loc{{3, "descriptors[0].key", "must not be empty"}}},
		{"duplicate key value", `
domain: a
descriptors:
  - key: k
    value: v
  - key: k
    value: w
  - key: k
    value: v
`, []loc{{8, "descriptors[2]", `duplicate descriptor: key "k" and value "v" already at descriptors[0]`}}},
		{"duplicate key only nested", `
domain: a
descriptors:
  - key: k
    descriptors:
      - key: u
      - key: u
`, []loc{{7, "descriptors[0].descriptors[1]", `key "u" without a value already at descriptors[0].descriptors[0]`}}},
		{"unknown unit", `
domain: a
descriptors:
  - key: k
    descriptors:
      - key: u
      - key: v
        rate_limit:
          unit: fortnight
          requests_per_unit: 1
`, []loc{{9, "descriptors[0].descriptors[1].rate_limit.unit", `unknown unit "fortnight"`}}},
		{"missing requests", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unit: second
`, []loc{{6, "descriptors[0].rate_limit.requests_per_unit", "missing"}}},
		{"missing unit", `
domain: a
descriptors:
  - key: k
    rate_limit:
      requests: 4
`, []loc{{6, "descriptors[0].rate_limit.unit", "missing"}}},
		{"negative requests", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unit: second
      requests_per_unit: -1
`, []loc{{7, "descriptors[0].rate_limit.requests_per_unit", "must not be negative"}}},
		{"requests not a number", `
domain: a
descriptors:
  - key: k
    rate_limit: {unit: second, requests_per_unit: lots}
`, []loc{{5, "descriptors[0].rate_limit.requests_per_unit", `must be a whole number, not "lots"`}}},
		{"requests too large", `
domain: a
descriptors:
  - key: k
    rate_limit: {unit: second, requests: 9007199254740992}
`, []loc{{5, "descriptors[0].rate_limit.requests", "must be at most 9007199254740991"}}},
		{"both requests keys", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unit: second
      requests_per_unit: 1
      requests: 2
`, []loc{{8, "descriptors[0].rate_limit.requests", "mean the same"}}},
		{"unlimited with unit", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unlimited: true
      unit: second
`, []loc{{7, "descriptors[0].rate_limit.unit", "must not be given with unlimited"}}},
		{"unlimited with count", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unlimited: true
      requests: 5
`, []loc{{7, "descriptors[0].rate_limit.requests", "must not be given with unlimited"}}},
		{"unlimited in a list", `
domain: a
descriptors:
  - key: k
    rate_limits:
      - unlimited: true
`, []loc{{6, "descriptors[0].rate_limits[0].unlimited", "only allowed in a single rate_limit"}}},
		{"unlimited not a bool", `
domain: a
descriptors:
  - key: k
    rate_limit: {unlimited: maybe}
`, []loc{{5, "descriptors[0].rate_limit.unlimited", `must be true or false, not "maybe"`}}},
		{"bad window", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: 10 seconds, requests: 1}
`, []loc{{5, "descriptors[0].rate_limit.window", `"10 seconds" is not a duration`}}},
		{"window too short", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: 500us, requests: 1}
`, []loc{{5, "descriptors[0].rate_limit.window", "must be at least 1ms"}}},
		{"negative window", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: -1s, requests: 1}
`, []loc{{5, "descriptors[0].rate_limit.window", "must not be negative"}}},
		{"window and unit", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unit: second
      window: 1s
      requests: 1
`, []loc{{7, "descriptors[0].rate_limit.window", "alternatives"}}},
		{"buckets zero", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: 1s, requests: 1, buckets: 0}
`, []loc{{5, "descriptors[0].rate_limit.buckets", "between 1 and 3600"}}},
		{"buckets too many", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: 1s, requests: 1, buckets: 3601}
`, []loc{{5, "descriptors[0].rate_limit.buckets", "at most 3600"}}},
		{"buckets too fine", `
domain: a
descriptors:
  - key: k
    rate_limit: {window: 1ms, requests: 1, buckets: 2000}
`, []loc{{5, "descriptors[0].rate_limit.buckets", "shorter than 1µs"}}},
		{"rate_limit and rate_limits", `
domain: a
descriptors:
  - key: k
    rate_limit: {unit: second, requests: 1}
    rate_limits:
      - {unit: hour, requests: 1}
`, []loc{{6, "descriptors[0].rate_limits", "not both"}}},
		{"same window twice", `
domain: a
descriptors:
  - key: k
    rate_limits:
      - {unit: minute, requests: 10}
      - {window: 60s, requests: 20}
`, []loc{{7, "descriptors[0].rate_limits[1]", "same window (1m) as descriptors[0].rate_limits[0]"}}},
		{"empty rate_limits", `
domain: a
descriptors:
  - key: k
    rate_limits: []
`, []loc{{5, "descriptors[0].rate_limits", "at least one"}}},
		{"replaces itself", `
domain: a
descriptors:
  - key: k
    rate_limit:
      name: n
      unit: second
      requests: 1
      replaces:
        - name: n
`, []loc{{10, "descriptors[0].rate_limit.replaces[0].name", "cannot replace itself"}}},
		{"replaces empty", `
domain: a
descriptors:
  - key: k
    rate_limit:
      unit: second
      requests: 1
      replaces:
        - name: ''
`, []loc{{9, "descriptors[0].rate_limit.replaces[0].name", "must not be empty"}}},
		{"unknown key deep", `
domain: a
descriptors:
  - key: k
    descriptors:
      - key: u
        rate_limit:
          unti: second
          requests_per_unit: 1
`, []loc{
			{8, "descriptors[0].descriptors[0].rate_limit.unti", `unknown key (did you mean "unit"?)`},
			{8, "descriptors[0].descriptors[0].rate_limit.unit", "missing"},
		}},
		{"shadow_mode not a bool", "domain: a\ndescriptors:\n  - key: k\n    shadow_mode: sure\n", []loc{{4, "descriptors[0].shadow_mode", "must be true or false"}}},
		{"bad over_limit_response", `
domain: a
over_limit_response:
  body: [x]
  headers:
    "Bad Header": x
    X-Ok: 1
    x-ok: 2
  status: 503
`, []loc{
			{4, "over_limit_response.body", "must be a string"},
			{6, "over_limit_response.headers.Bad Header", "not a valid header name"},
			{8, "over_limit_response.headers.x-ok", "duplicate header (first on line 7)"},
			{9, "over_limit_response.status", "unknown key"},
		}},
		{"all errors of a file", `
domain: ''
descriptors:
  - key: k
    rate_limit: {unit: lightyear, requests_per_unit: 1}
  - value: v
  - key: j
    extra: 1
`, []loc{
			{2, "domain", "must not be empty"},
			{5, "descriptors[0].rate_limit.unit", "unknown unit"},
			{6, "descriptors[1].key", "missing"},
			{8, "descriptors[2].extra", "unknown key"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded with domain %q; want %d problems", d.Name, len(tt.want))
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not Problems: %v", err, err)
			}
			if len(ps) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tt.want), err)
			}
			for i, w := range tt.want {
				p := ps[i]
				if p.File != "f.yaml" || p.Line != w.line || p.Field != w.field || !strings.Contains(p.Msg, w.msg) {
					t.Errorf("problem %d = %q (line %d, field %q); want line %d, field %q, message containing %q",
						i, p.Error(), p.Line, p.Field, w.line, w.field, w.msg)
				}
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	ps := Problems{
		{File: "a.yaml", Line: 3, Field: "descriptors[0].key", Msg: "missing"},
		{File: "b.yaml", Msg: "empty file"},
	}
	want := "a.yaml:3: descriptors[0].key: missing\nb.yaml: empty file"
	if got := ps.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseAcceptedForms(t *testing.T) {
	lim := func(unit string, window time.Duration, requests uint64, id string) Limit {
		return Limit{Kind: KindRequests, Window: window, Buckets: DefaultBuckets, Requests: requests, Unit: unit, ID: id}
	}
	tests := []struct {
		name string
		body string // a descriptor list item under "descriptors:", for key k
		want Rule
	}{
		{"envoy unit", "{key: k, rate_limit: {unit: second, requests_per_unit: 100}}",
			Rule{Limits: []Limit{lim("second", time.Second, 100, "r:1s:10")}}},
		{"unit in capitals", "{key: k, rate_limit: {unit: MINUTE, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("minute", time.Minute, 5, "r:1m:10")}}},
		{"hour", "{key: k, rate_limit: {unit: hour, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("hour", time.Hour, 5, "r:1h:10")}}},
		{"day", "{key: k, rate_limit: {unit: day, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("day", 24*time.Hour, 5, "r:1d:10")}}},
		{"week", "{key: k, rate_limit: {unit: week, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("week", 7*24*time.Hour, 5, "r:7d:10")}}},
		{"month", "{key: k, rate_limit: {unit: month, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("month", 30*24*time.Hour, 5, "r:30d:10")}}},
		{"year", "{key: k, rate_limit: {unit: year, requests_per_unit: 5}}",
			Rule{Limits: []Limit{lim("year", 365*24*time.Hour, 5, "r:365d:10")}}},
		{"zero blocks", "{key: k, rate_limit: {unit: second, requests_per_unit: 0}}",
			Rule{Limits: []Limit{lim("second", time.Second, 0, "r:1s:10")}}},
		{"window", "{key: k, rate_limit: {window: 10s, requests: 50}}",
			Rule{Limits: []Limit{lim("", 10*time.Second, 50, "r:10s:10")}}},
		{"window odd", "{key: k, rate_limit: {window: 1500ms, requests: 50}}",
			Rule{Limits: []Limit{lim("", 1500*time.Millisecond, 50, "r:1500ms:10")}}},
		{"unit with requests", "{key: k, rate_limit: {unit: second, requests: 7}}",
			Rule{Limits: []Limit{lim("second", time.Second, 7, "r:1s:10")}}},
		{"window with requests_per_unit", "{key: k, rate_limit: {window: 90s, requests_per_unit: 7}}",
			Rule{Limits: []Limit{lim("", 90*time.Second, 7, "r:90s:10")}}},
		{"buckets", "{key: k, rate_limit: {window: 1m, requests: 7, buckets: 60}}",
			Rule{Limits: []Limit{{Kind: KindRequests, Window: time.Minute, Buckets: 60, Requests: 7, ID: "r:1m:60"}}}},
		{"rate_limits", "{key: k, rate_limits: [{unit: second, requests: 100}, {window: 1h, requests: 100000}]}",
			Rule{Limits: []Limit{lim("second", time.Second, 100, "r:1s:10"), lim("", time.Hour, 100000, "r:1h:10")}}},
		{"unlimited", "{key: k, rate_limit: {unlimited: true}}", Rule{Unlimited: true}},
		{"unlimited yes", "{key: k, rate_limit: {unlimited: yes, requests_per_unit: 0}}", Rule{Unlimited: true}},
		{"name and replaces", "{key: k, rate_limit: {name: a, replaces: [{name: b}], unit: second, requests_per_unit: 1}}",
			Rule{Limits: []Limit{{Kind: KindRequests, Name: "a", Replaces: []string{"b"}, Window: time.Second, Buckets: 10, Requests: 1, Unit: "second", ID: "r:1s:10"}}}},
		{"shadow", "{key: k, shadow_mode: true, rate_limit: {unit: second, requests_per_unit: 1}}",
			Rule{Shadow: true, Limits: []Limit{lim("second", time.Second, 1, "r:1s:10")}}},
		{"detailed_metric", "{key: k, detailed_metric: true, rate_limit: {unit: second, requests_per_unit: 1}}",
			Rule{DetailedMetric: true, Limits: []Limit{lim("second", time.Second, 1, "r:1s:10")}}},
		{"value_to_metric", "{key: k, value_to_metric: true, rate_limit: {unit: second, requests_per_unit: 1}}",
			Rule{DetailedMetric: true, Limits: []Limit{lim("second", time.Second, 1, "r:1s:10")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse("f.yaml", []byte("domain: d\ndescriptors:\n  - "+tt.body+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := d.Match([]Entry{{"k", "v"}})
			if !ok {
				t.Fatal("no match")
			}
			tt.want.Path = []Entry{{"k", "v"}}
			tt.want.Stat = "d.k"
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rule = %+v\nwant   %+v", got, tt.want)
			}
		})
	}
}

func TestParseYAMLFeatures(t *testing.T) {
	// Anchors, merge keys and scalars of other types read as strings, as envoy's yaml.v2 does.
	d, err := Parse("f.yaml", []byte(`
domain: d
x-defaults: &base
  unit: second
  requests_per_unit: 5
descriptors:
  - key: port
    value: 8080
    rate_limit:
      <<: *base
      requests_per_unit: 6
  - key: flag
    value: true
    rate_limit: *base
`))
	if err == nil {
		t.Fatalf("unknown root key x-defaults accepted: %+v", d)
	}
	d, err = Parse("f.yaml", []byte(`
domain: d
descriptors:
  - key: port
    value: 8080
    rate_limit: &base
      unit: second
      requests_per_unit: 5
  - key: other
    rate_limit:
      <<: *base
      requests_per_unit: 6
`))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := d.Match([]Entry{{"port", "8080"}}); !ok || r.Limits[0].Requests != 5 {
		t.Errorf("port 8080: %+v, %v", r, ok)
	}
	if r, ok := d.Match([]Entry{{"other", "x"}}); !ok || r.Limits[0].Requests != 6 || r.Limits[0].Window != time.Second {
		t.Errorf("merged: %+v, %v", r, ok)
	}
}

func TestParseOverLimitResponse(t *testing.T) {
	d, err := Parse("f.yaml", []byte(`
domain: d
over_limit_response:
  body: '{"fault":{}}'
  headers:
    X-B: two
    Content-Type: application/json
    X-A: 1
`))
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "d" || d.File != "f.yaml" || d.OverLimitBody != `{"fault":{}}` {
		t.Errorf("domain = %+v", d)
	}
	want := []Header{{"Content-Type", "application/json"}, {"X-A", "1"}, {"X-B", "two"}}
	if !reflect.DeepEqual(d.OverLimitHeaders, want) {
		t.Errorf("headers = %v, want %v", d.OverLimitHeaders, want)
	}
}

func TestParseWarnings(t *testing.T) {
	d, err := Parse("f.yaml", []byte(`
domain: d
descriptors:
  - key: k
    value: exact
    share_threshold: true
    rate_limit:
      unit: second
      requests_per_unit: 1
      replaces: [{name: nowhere}]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []loc{
		{6, "descriptors[0].share_threshold", "no effect without a wildcard"},
		{8, "descriptors[0].rate_limit.replaces", `replaces "nowhere", but no limit`},
	}
	expectWarnings(t, d.Warnings, want)
}

// expectWarnings checks the warnings one by one: line, field and a part of the message.
func expectWarnings(t *testing.T, got Problems, want []loc) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%v", got)
	}
	for i, w := range want {
		p := got[i]
		if p.Line != w.line || p.Field != w.field || !strings.Contains(p.Msg, w.msg) {
			t.Errorf("warning %d = %q; want %v", i, p.Error(), w)
		}
	}
}

func TestParseTokenLimits(t *testing.T) {
	d, err := Parse("t.yaml", []byte(`
domain: ai
descriptors:
  - key: api
    value: ChatAPI:1.0.0
    rate_limit: {unit: second, requests_per_unit: 5}
    token_limits:
      - {window: 1m, total_tokens: 100000, prompt_tokens: 60000, completion_tokens: 50000}
      - {unit: day, total_tokens: 5000000, buckets: 24}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := d.Match([]Entry{{"api", "ChatAPI:1.0.0"}})
	if !ok {
		t.Fatal("no match")
	}
	var got []string
	for _, l := range r.Limits {
		got = append(got, fmt.Sprintf("%s %s=%d", l.ID, l.Kind, l.Requests))
	}
	want := []string{
		"r:1s:10 requests=5",
		"t:1m:10 total_tokens=100000", "p:1m:10 prompt_tokens=60000", "c:1m:10 completion_tokens=50000",
		"t:1d:24 total_tokens=5000000",
	}
	if !slices.Equal(got, want) {
		t.Errorf("limits\n got %q\nwant %q", got, want)
	}

	for _, tc := range []struct{ yaml, want string }{
		{"token_limit: {window: 1m}", "t.yaml:4: descriptors[0].token_limit.total_tokens: missing"},
		{"token_limit: {window: 1m, total_tokens: -1}", "t.yaml:4: descriptors[0].token_limit.total_tokens:"},
		{"token_limit: {total_tokens: 5}", "t.yaml:4: descriptors[0].token_limit.unit: missing"},
		{"token_limit: {window: 1m, total_tokens: 5, requests: 3}", "t.yaml:4: descriptors[0].token_limit.requests:"},
		{"token_limits: [{window: 1m, total_tokens: 5}, {unit: minute, total_tokens: 9}]", "descriptors[0].token_limits[1]: same window"},
		{"token_limit: {window: 1m, total_tokens: 100, prompt_tokens: 200}", "t.yaml:4: descriptors[0].token_limit.prompt_tokens: 200 is above total_tokens 100"},
		{"token_limit: {window: 1m, total_tokens: 100, completion_tokens: 101}", "t.yaml:4: descriptors[0].token_limit.completion_tokens: 101 is above total_tokens 100"},
		{"token_limits: [{window: 1s, total_tokens: 5}, {window: 1m, total_tokens: 10, prompt_tokens: 60}]", "t.yaml:4: descriptors[0].token_limits[1].prompt_tokens: 60 is above total_tokens 10"},
	} {
		_, err := Parse("t.yaml", []byte("domain: ai\ndescriptors:\n  - key: api\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestParseFailureMode(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		open bool
		err  string
	}{
		{"", false, ""},
		{"failure_mode: unavailable\n", false, ""},
		{"failure_mode: open\n", true, ""},
		{"failure_mode: closed\n", false, "f.yaml:2: failure_mode: unknown mode"},
	} {
		d, err := Parse("f.yaml", []byte("domain: d\n"+tc.yaml))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case d.FailOpen != tc.open:
			t.Errorf("%q: FailOpen %v, want %v", tc.yaml, d.FailOpen, tc.open)
		}
	}
}

func TestParseQuotaModeAndMetadata(t *testing.T) {
	d, err := Parse("q.yaml", []byte(`
domain: d
descriptors:
  - key: service
    value: a
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
    metadata:
      route: {name: a, weight: 10, share: 0.5, tags: [x, 2, true, null]}
      since: 2026-01-01
      big: 18446744073709551616
`))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := d.Match([]Entry{{"service", "a"}})
	want := map[string]any{
		"route": map[string]any{"name": "a", "weight": int64(10), "share": 0.5, "tags": []any{"x", int64(2), true, nil}},
		"since": "2026-01-01",
		"big":   float64(1 << 64),
	}
	if !ok || !r.Quota || !reflect.DeepEqual(r.Metadata, want) {
		t.Errorf("rule %+v, want quota and metadata %#v", r, want)
	}
	if d.OverLimitResponse {
		t.Error("OverLimitResponse without over_limit_response")
	}

	const limit = "rate_limit: {unit: second, requests_per_unit: 1}\n    "
	for _, tc := range []struct{ yaml, want string }{
		{limit + "metadata: [a]", "q.yaml:5: descriptors[0].metadata: must be a mapping, not a list"},
		{limit + "metadata: {a: .nan}", "descriptors[0].metadata.a: must be a finite number"},
		{limit + "metadata: {a: {b: 1, b: 2}}", "descriptors[0].metadata.a.b: duplicate key"},
		{limit + "metadata: {a: [{c: .inf}]}", "descriptors[0].metadata.a[0].c: must be a finite number"},
		{limit + "quota_mode: yes-please", "descriptors[0].quota_mode: must be true or false"},
		{"quota_mode: true\n    token_limit: {unit: minute, total_tokens: 5}", "descriptors[0].quota_mode: applies to request limits"},
	} {
		_, err := Parse("q.yaml", []byte("domain: d\ndescriptors:\n  - key: k\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestParseModeWarnings(t *testing.T) {
	d, err := Parse("w.yaml", []byte(`
domain: d
descriptors:
  - key: k
    quota_mode: true
    metadata: {a: 1}
    descriptors:
      - key: sub
        rate_limit: {unlimited: true}
        metadata: {b: 2}
  - key: path
    value: /api/*
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: path
    value: /api/v*/users
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: path
    value: /other*x
    rate_limit: {unit: second, requests_per_unit: 1}
  - key: path
    value: /other/*
    share_threshold: true
    rate_limit: {unit: second, requests_per_unit: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []loc{
		{5, "descriptors[0].quota_mode", "no effect without a rate_limit"},
		{6, "descriptors[0].metadata", "no effect without a rate_limit"},
		{10, "descriptors[0].descriptors[0].metadata", "no effect without a rate_limit"},
		{15, "descriptors[2].value", `"/api/v*/users" is never matched: "/api/*" at descriptors[1] comes first`},
	}
	expectWarnings(t, d.Warnings, want)
	if r, ok := d.Match([]Entry{{"path", "/other/a"}}); !ok || r.Path[0].Value != "/other/*" {
		t.Errorf("share_threshold after a wildcard that does not cover it: %+v %v", r, ok)
	}
}

func TestParseLease(t *testing.T) {
	d, err := Parse("l.yaml", []byte(`
domain: d
descriptors:
  - key: a
    rate_limit: {unit: second, requests_per_unit: 5}
  - key: b
    rate_limit: {unit: second, requests_per_unit: 5, lease: off}
  - key: c
    rate_limits:
      - {window: 1s, requests: 5, lease: auto}
      - {window: 1m, requests: 50, lease: off}
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, key := range []string{"a", "b", "c"} {
		r, _ := d.Match([]Entry{{key, "x"}})
		for _, l := range r.Limits {
			got = append(got, key+" "+l.ID+" "+l.Lease.String())
		}
	}
	want := []string{"a r:1s:10 auto", "b r:1s:10 off", "c r:1s:10 auto", "c r:1m:10 off"}
	if !slices.Equal(got, want) {
		t.Errorf("lease modes\n got %q\nwant %q", got, want)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"rate_limit: {unit: second, requests_per_unit: 5, lease: sometimes}", `l.yaml:4: descriptors[0].rate_limit.lease: must be auto or off, not "sometimes"`},
		{"rate_limit: {unit: second, requests_per_unit: 5, lease: [off]}", "l.yaml:4: descriptors[0].rate_limit.lease: must be a string"},
		{"rate_limit: {unlimited: true, lease: off}", "descriptors[0].rate_limit.lease: must not be given with unlimited"},
		{"token_limit: {window: 1m, total_tokens: 5, lease: auto}", "descriptors[0].token_limit.lease: unknown key"},
	} {
		_, err := Parse("l.yaml", []byte("domain: d\ndescriptors:\n  - key: a\n    "+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
