package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const matchYAML = `
domain: m
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: remote_address
    value: 50.0.0.5
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: path
    value: /api/admin/*
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: path
    value: /api/*
    rate_limit: {unit: minute, requests_per_unit: 100}
  - key: path
    value: /v*/users/*/orders
    rate_limit: {unit: minute, requests_per_unit: 7}
  - key: path
    value: /api/admin/login
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: file
    value: /files/*
    share_threshold: true
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 5}
  - key: message_type
    value: marketing
    rate_limit: {unit: day, requests_per_unit: 1000}
    descriptors:
      - key: to_number
        rate_limit: {unit: day, requests_per_unit: 5}
  - key: ldap
    rate_limit: {unlimited: true}
  - key: service
    descriptors:
      - key: user
        value: user-a
        shadow_mode: true
        rate_limit: {unit: second, requests_per_unit: 10}
  - key: placeholder
    value: p
    descriptors:
      - key: deeper
        value: d
`

func TestMatch(t *testing.T) {
	d, err := Parse("m.yaml", []byte(matchYAML))
	if err != nil {
		t.Fatal(err)
	}
	e := func(kv ...string) []Entry {
		var es []Entry
		for i := 0; i < len(kv); i += 2 {
			es = append(es, Entry{kv[i], kv[i+1]})
		}
		return es
	}
	tests := []struct {
		name     string
		entries  []Entry
		ok       bool
		requests uint64 // of the first limit
		stat     string
		path     []Entry // nil: the entries themselves
		shadow   bool
		unlim    bool
	}{
		{"key only", e("remote_address", "1.2.3.4"), true, 10, "m.remote_address", nil, false, false},
		{"exact beats key only", e("remote_address", "50.0.0.5"), true, 0, "m.remote_address_50.0.0.5", nil, false, false},
		{"empty value takes key only", e("remote_address", ""), true, 10, "m.remote_address", nil, false, false},
		{"wildcard", e("path", "/api/users"), true, 100, "m.path_/api/*", nil, false, false},
		{"first matching wildcard", e("path", "/api/admin/users"), true, 10, "m.path_/api/admin/*", nil, false, false},
		{"wildcards in the middle", e("path", "/v2/users/42/orders"), true, 7, "m.path_/v*/users/*/orders", nil, false, false},
		{"a star matches nothing too", e("path", "/v/users//orders"), true, 7, "m.path_/v*/users/*/orders", nil, false, false},
		{"middle wildcard needs its suffix", e("path", "/v2/users/42/order"), false, 0, "", nil, false, false},
		{"exact beats wildcard", e("path", "/api/admin/login"), true, 1, "m.path_/api/admin/login", nil, false, false},
		{"wildcard prefix itself", e("path", "/api/"), true, 100, "m.path_/api/*", nil, false, false},
		{"no wildcard match", e("path", "/other"), false, 0, "", nil, false, false},
		{"unknown key", e("nothing", "x"), false, 0, "", nil, false, false},
		{"share threshold path", e("file", "/files/a.pdf", "user", "u1"), true, 5, "m.file_/files/*.user",
			e("file", "/files/*", "user", "u1"), false, false},
		{"limit only at last entry", e("message_type", "marketing"), true, 1000, "m.message_type_marketing", nil, false, false},
		{"nested", e("message_type", "marketing", "to_number", "555"), true, 5, "m.message_type_marketing.to_number", nil, false, false},
		{"deeper request than config", e("remote_address", "1.2.3.4", "extra", "x"), false, 0, "", nil, false, false},
		{"deeper descriptor not matching", e("message_type", "marketing", "other", "x"), false, 0, "", nil, false, false},
		{"shorter request than config", e("service", "s"), false, 0, "", nil, false, false},
		{"placeholder without limit", e("placeholder", "p", "deeper", "d"), false, 0, "", nil, false, false},
		{"shadow", e("service", "s1", "user", "user-a"), true, 10, "m.service.user_user-a", nil, true, false},
		{"shadow sibling value", e("service", "s1", "user", "user-b"), false, 0, "", nil, false, false},
		{"unlimited", e("ldap", "x"), true, 0, "m.ldap", nil, false, true},
		{"empty", nil, false, 0, "", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]Entry(nil), tt.entries...)
			r, ok := d.Match(in)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v (rule %+v)", ok, tt.ok, r)
			}
			if !reflect.DeepEqual(in, tt.entries) {
				t.Errorf("Match modified its input: %v", in)
			}
			if !ok {
				return
			}
			if tt.unlim != r.Unlimited || tt.shadow != r.Shadow || r.Stat != tt.stat {
				t.Errorf("rule = %+v", r)
			}
			if !tt.unlim && (len(r.Limits) == 0 || r.Limits[0].Requests != tt.requests) {
				t.Errorf("limits = %+v, want first %d", r.Limits, tt.requests)
			}
			if tt.unlim && len(r.Limits) != 0 {
				t.Errorf("unlimited with limits %+v", r.Limits)
			}
			want := tt.path
			if want == nil {
				want = tt.entries
			}
			if !reflect.DeepEqual(r.Path, want) {
				t.Errorf("path = %v, want %v", r.Path, want)
			}
		})
	}
	var nilDomain *Domain
	if _, ok := nilDomain.Match(e("a", "b")); ok {
		t.Error("nil domain matched")
	}
}

func TestMatchAllocs(t *testing.T) {
	d, err := Parse("m.yaml", []byte(matchYAML))
	if err != nil {
		t.Fatal(err)
	}
	in := []Entry{{"message_type", "marketing"}, {"to_number", "555"}}
	if n := testing.AllocsPerRun(100, func() { d.Match(in) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

// benchConfig is an API manager's config: many APIs, two environments each, plus some
// wildcards.
func benchConfig(apis int) string {
	var b strings.Builder
	b.WriteString("domain: apim\ndescriptors:\n")
	for i := range apis {
		fmt.Fprintf(&b, `  - key: api
    value: API%d:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limits: [{unit: second, requests: 100}, {window: 1h, requests: 100000}]
      - key: environment
        value: sandbox
        rate_limit: {unit: second, requests_per_unit: 10}
`, i)
	}
	for i := range 20 {
		fmt.Fprintf(&b, "  - key: path\n    value: /v%d/*\n    rate_limit: {unit: minute, requests: 10}\n", i)
	}
	b.WriteString("  - key: path\n    value: /shared/*\n    share_threshold: true\n    rate_limit: {unit: minute, requests: 10}\n")
	return b.String()
}

func BenchmarkMatch(b *testing.B) {
	d, err := Parse("bench.yaml", []byte(benchConfig(1000)))
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name    string
		entries []Entry
	}{
		{"exact2", []Entry{{"api", "API500:1.0.0"}, {"environment", "production"}}},
		{"wildcard", []Entry{{"path", "/v19/users/42"}}},
		{"share", []Entry{{"path", "/shared/x"}}},
		{"miss", []Entry{{"api", "Nope:1.0.0"}, {"environment", "production"}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d.Match(c.entries)
				}
			})
		})
	}
}
