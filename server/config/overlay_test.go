package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const overlayBase = `
domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - key: environment
        value: production
        rate_limit: {unit: second, requests_per_unit: 100}
        descriptors:
          - key: consumer
            rate_limit: {unit: second, requests_per_unit: 5}
      - key: environment
        value: sandbox
        rate_limit: {unit: second, requests_per_unit: 10}
  - key: tenant
    value: acme*
    rate_limit: {unit: minute, requests_per_unit: 60}
`

func mustSet(t *testing.T, yaml string) *Set {
	t.Helper()
	d, err := Parse("base.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSet(d)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustOverride(t *testing.T, domain string, path []Entry, fields string) *Override {
	t.Helper()
	o, err := ParseOverride(domain, path, []byte(fields))
	if err != nil {
		t.Fatalf("ParseOverride %v %q: %v", path, fields, err)
	}
	return o
}

func entries(kv ...string) []Entry {
	var out []Entry
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, Entry{kv[i], kv[i+1]})
	}
	return out
}

func requestsAt(t *testing.T, s *Set, domain string, path []Entry) []uint64 {
	t.Helper()
	d, ok := s.Domain(domain)
	if !ok {
		return nil
	}
	r, ok := d.Match(path)
	if !ok {
		return nil
	}
	var out []uint64
	for _, l := range r.Limits {
		out = append(out, l.Requests)
	}
	return out
}

var (
	production = entries("api", "PizzaShackAPI:1.0.0", "environment", "production")
	sandbox    = entries("api", "PizzaShackAPI:1.0.0", "environment", "sandbox")
	consumer   = entries("api", "PizzaShackAPI:1.0.0", "environment", "production", "consumer", "alice")
)

func TestOverlayReplacesAtItsPathAndKeepsTheRest(t *testing.T) {
	base := mustSet(t, overlayBase)
	eff := base.Overlay([]*Override{mustOverride(t, "apim", production, "rate_limit: {unit: second, requests_per_unit: 40}")})

	if got := requestsAt(t, eff, "apim", production); !reflect.DeepEqual(got, []uint64{40}) {
		t.Errorf("production = %v, want the runtime 40", got)
	}
	if got := requestsAt(t, eff, "apim", consumer); !reflect.DeepEqual(got, []uint64{5}) {
		t.Errorf("nested consumer = %v, want the file's 5 (nested descriptors stay)", got)
	}
	if got := requestsAt(t, eff, "apim", sandbox); !reflect.DeepEqual(got, []uint64{10}) {
		t.Errorf("sandbox = %v, want the file's 10", got)
	}
	if got := requestsAt(t, base, "apim", production); !reflect.DeepEqual(got, []uint64{100}) {
		t.Errorf("the base set changed: production = %v", got)
	}
	// A counter is kept when only the number changes: same limit ID.
	b, _ := base.Domain("apim")
	e, _ := eff.Domain("apim")
	br, _ := b.Match(production)
	er, _ := e.Match(production)
	if br.Limits[0].ID != er.Limits[0].ID || br.Stat != er.Stat {
		t.Errorf("ID/Stat %s %s, want the file's %s %s", er.Limits[0].ID, er.Stat, br.Limits[0].ID, br.Stat)
	}
}

func TestOverlayAddsPathsAndDomains(t *testing.T) {
	base := mustSet(t, overlayBase)
	chat := entries("api", "ChatAPI:1.0.0", "environment", "production")
	eff := base.Overlay([]*Override{
		mustOverride(t, "apim", chat, "rate_limit: {window: 1m, requests: 30}\ntoken_limit: {window: 1m, total_tokens: 1000}"),
		mustOverride(t, "other", entries("user", ""), "rate_limit: {window: 1s, requests: 3}"),
		mustOverride(t, "apim", entries("tenant", "acme*"), "rate_limit: {unit: minute, requests_per_unit: 7}"),
	})
	d, _ := eff.Domain("apim")
	r, ok := d.Match(chat)
	if !ok || len(r.Limits) != 2 || r.Limits[0].Requests != 30 || r.Limits[1].Kind != KindTotalTokens || r.Limits[1].Requests != 1000 {
		t.Fatalf("added path: %+v %v", r, ok)
	}
	if r.Stat != "apim.api_ChatAPI:1.0.0.environment_production" {
		t.Errorf("added path's stat %q", r.Stat)
	}
	if _, ok := d.Match(entries("api", "ChatAPI:1.0.0")); ok {
		t.Error("the intermediate descriptor of an added path has limits")
	}
	if got := requestsAt(t, eff, "other", entries("user", "bob")); !reflect.DeepEqual(got, []uint64{3}) {
		t.Errorf("added domain, key-only: %v", got)
	}
	if got := eff.Domains(); !reflect.DeepEqual(got, []string{"apim", "other"}) {
		t.Errorf("domains %v", got)
	}
	if got := requestsAt(t, eff, "apim", entries("tenant", "acme-eu")); !reflect.DeepEqual(got, []uint64{7}) {
		t.Errorf("wildcard replaced: %v", got)
	}
	if got := requestsAt(t, base, "apim", entries("tenant", "acme-eu")); !reflect.DeepEqual(got, []uint64{60}) {
		t.Errorf("base wildcard changed: %v", got)
	}
	if base.Overlay(nil) != base {
		t.Error("no overrides should return the set itself")
	}
}

func TestOverlayLaterOverrideWins(t *testing.T) {
	base := mustSet(t, overlayBase)
	eff := base.Overlay([]*Override{
		mustOverride(t, "apim", sandbox, "rate_limit: {unit: second, requests_per_unit: 1}"),
		mustOverride(t, "apim", production, "rate_limit: {unit: second, requests_per_unit: 2}"),
		mustOverride(t, "apim", sandbox, "rate_limit: {unlimited: true}"),
	})
	d, _ := eff.Domain("apim")
	if r, ok := d.Match(sandbox); !ok || !r.Unlimited {
		t.Errorf("sandbox %+v, want unlimited", r)
	}
	if got := requestsAt(t, eff, "apim", production); !reflect.DeepEqual(got, []uint64{2}) {
		t.Errorf("production %v", got)
	}
}

// TestParseOverrideSameMessagesAsFiles checks that a runtime limit's problems
// are the file checker's, with the field relative to the runtime limit.
func TestParseOverrideSameMessagesAsFiles(t *testing.T) {
	for _, tc := range []struct {
		name, fields string
		field, msg   string
	}{
		{"negative", "rate_limits: [{window: 10s, requests: -1}]", "rate_limits[0].requests", "must not be negative"},
		{"unknown key", "rate_limt: {unit: second, requests_per_unit: 1}", "rate_limt", `unknown key (did you mean "rate_limit"?)`},
		{"bad unit", "rate_limit: {unit: fortnight, requests_per_unit: 1}", "rate_limit.unit", `unknown unit "fortnight"`},
		{"bad window", "rate_limit: {window: soon, requests: 1}", "rate_limit.window", `"soon" is not a duration`},
		{"string count", `rate_limit: {window: 1s, requests: "10"}`, "rate_limit.requests", `must be a whole number, not "10"`},
		{"no token amount", "token_limit: {window: 1m}", "token_limit.total_tokens", "missing: give total_tokens"},
		{"unlimited and more", "rate_limit: {unlimited: true}\ntoken_limit: {window: 1m, total_tokens: 5}", "token_limit", "unlimited rate_limit cannot have other limits"},
		{"no limit", "shadow_mode: true", "rate_limit", "missing"},
		{"empty", "", "rate_limit", "missing"},
		{"nested descriptors", "descriptors: []\nrate_limit: {unit: second, requests_per_unit: 1}", "descriptors", "not allowed in a runtime limit"},
		{"not a mapping", "[1, 2]", "", "must be a mapping"},
		{"json too", `{"rate_limit": {"window": "1s", "requests": 1.5}}`, "rate_limit.requests", "must be a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseOverride("apim", sandbox, []byte(tc.fields))
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			found := false
			for _, p := range ps {
				if p.Field == tc.field && strings.Contains(p.Msg, tc.msg) {
					found = true
				}
				if p.File != "" || p.Line != 0 {
					t.Errorf("problem %q carries a file or line", p.Error())
				}
			}
			if !found {
				t.Errorf("problems %q lack %s: %s", ps.Error(), tc.field, tc.msg)
			}
		})
	}
	// The file says the same thing about the same fields.
	file := "domain: apim\ndescriptors:\n  - key: api\n    rate_limits: [{window: 10s, requests: -1}]\n"
	_, err := Parse("f.yaml", []byte(file))
	if !strings.Contains(err.Error(), "descriptors[0].rate_limits[0].requests: must not be negative") {
		t.Errorf("file message: %v", err)
	}
	for _, tc := range []struct {
		domain string
		path   []Entry
		field  string
	}{{"", sandbox, "domain"}, {"apim", nil, "path"}, {"apim", entries("api", "x", "", "y"), "path[1].key"}} {
		_, err := ParseOverride(tc.domain, tc.path, []byte("rate_limit: {unlimited: true}"))
		var ps Problems
		if !errors.As(err, &ps) || ps[0].Field != tc.field {
			t.Errorf("%q %v: %v, want a problem at %s", tc.domain, tc.path, err, tc.field)
		}
	}
}

func TestLookupAndValues(t *testing.T) {
	s := mustSet(t, overlayBase)
	d, _ := s.Domain("apim")
	if got := d.Values(nil, "api"); !reflect.DeepEqual(got, []string{"PizzaShackAPI:1.0.0"}) {
		t.Errorf("apis %v", got)
	}
	if got := d.Values(entries("api", "PizzaShackAPI:1.0.0"), "environment"); !reflect.DeepEqual(got, []string{"production", "sandbox"}) {
		t.Errorf("environments %v", got)
	}
	if got := d.Values(nil, "tenant"); got != nil {
		t.Errorf("a wildcard is not a value: %v", got)
	}
	if r, ok := d.Lookup(entries("tenant", "acme*")); !ok || r.Limits[0].Window != time.Minute {
		t.Errorf("lookup of the wildcard descriptor: %+v %v", r, ok)
	}
	if _, ok := d.Lookup(entries("tenant", "acme-eu")); ok {
		t.Error("Lookup matched a request value")
	}
	if _, ok := d.Lookup(entries("api", "PizzaShackAPI:1.0.0")); ok {
		t.Error("Lookup found limits on a descriptor without any")
	}
}
