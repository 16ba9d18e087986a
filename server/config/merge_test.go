package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// The two halves of one domain, as teams split envoyproxy/ratelimit configs
// under MERGE_DOMAIN_CONFIG=true: one file per API.
const (
	pizzaHalf = `domain: apim
descriptors:
  - key: api
    value: PizzaShackAPI:1.0.0
    descriptors:
      - {key: environment, value: production, rate_limit: {unit: second, requests_per_unit: 100}}
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 600}
`
	chatHalf = `domain: apim
descriptors:
  - key: api
    value: ChatAPI:1.0.0
    descriptors:
      - {key: environment, value: production, rate_limit: {unit: second, requests_per_unit: 7}}
  - key: api
    value: Legacy*
    rate_limit: {unit: second, requests_per_unit: 3}
`
)

// matchRequests returns the first limit's count for entries in domain apim, or -1.
func matchRequests(s *Set, entries ...Entry) int {
	d, ok := s.Domain("apim")
	if !ok {
		return -1
	}
	r, ok := d.Match(entries)
	if !ok || len(r.Limits) == 0 {
		return -1
	}
	return int(r.Limits[0].Requests)
}

func TestMergeDomains(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "pizza.yaml"), pizzaHalf)
	write(t, filepath.Join(dir, "chat.yaml"), chatHalf)

	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), `duplicate domain "apim"`) || !strings.Contains(err.Error(), "--merge-domain-config") {
		t.Fatalf("without merging: err = %v, want a duplicate domain that points at --merge-domain-config", err)
	}

	s, err := LoadWith(dir, LoadOptions{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		entries []Entry
		want    int
	}{
		{[]Entry{{"api", "PizzaShackAPI:1.0.0"}, {"environment", "production"}}, 100},
		{[]Entry{{"api", "ChatAPI:1.0.0"}, {"environment", "production"}}, 7},
		{[]Entry{{"api", "LegacyOrders"}}, 3},
		{[]Entry{{"remote_address", "10.0.0.1"}}, 600},
		{[]Entry{{"api", "Unknown"}}, -1},
	} {
		if got := matchRequests(s, tc.entries...); got != tc.want {
			t.Errorf("%v: limit %d, want %d", tc.entries, got, tc.want)
		}
	}
	if got := s.Domains(); len(got) != 1 {
		t.Errorf("domains = %v, want one", got)
	}
}

func TestMergeDomainsConflicts(t *testing.T) {
	for _, tc := range []struct {
		name, other string
		want        []string
	}{
		{"same value", `domain: apim
descriptors:
  - {key: api, value: PizzaShackAPI:1.0.0, rate_limit: {unit: second, requests_per_unit: 1}}
`, []string{`key "api" and value "PizzaShackAPI:1.0.0" is defined by another file too`}},
		{"same key-only descriptor", `domain: apim
descriptors:
  - {key: remote_address, rate_limit: {unit: second, requests_per_unit: 1}}
`, []string{`key "remote_address" and no value is defined by another file too`}},
		{"same wildcard", chatHalf, []string{`value "ChatAPI:1.0.0"`, `value "Legacy*"`}},
		{"other failure mode", `domain: apim
failure_mode: open
descriptors:
  - {key: other, rate_limit: {unit: second, requests_per_unit: 1}}
`, []string{"failure_mode and over_limit_response must be the same"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "a.yaml"), pizzaHalf+strings.TrimPrefix(chatHalf, "domain: apim\ndescriptors:\n"))
			write(t, filepath.Join(dir, "b.yaml"), tc.other)
			_, err := LoadWith(dir, LoadOptions{MergeDomains: true})
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("err = %v, want Problems", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to say %q", err, want)
				}
			}
			for _, p := range ps {
				if p.File != filepath.Join(dir, "b.yaml") {
					t.Errorf("problem %v is not located in b.yaml", p)
				}
			}
		})
	}
}

// TestWatchKeepsMergeDomains checks that a reload merges the files again.
func TestWatchKeepsMergeDomains(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "pizza.yaml"), pizzaHalf)
	write(t, filepath.Join(dir, "chat.yaml"), chatHalf)
	s, err := LoadWith(dir, LoadOptions{MergeDomains: true})
	if err != nil {
		t.Fatal(err)
	}
	w := startWatchFrom(t, dir, s)
	write(t, filepath.Join(dir, "chat.yaml"), strings.Replace(chatHalf, "requests_per_unit: 7", "requests_per_unit: 8", 1))
	next := w.nextSet(t)
	if got := matchRequests(next, Entry{"api", "ChatAPI:1.0.0"}, Entry{"environment", "production"}); got != 8 {
		t.Errorf("after the edit: ChatAPI limit %d, want 8", got)
	}
	if got := matchRequests(next, Entry{"api", "PizzaShackAPI:1.0.0"}, Entry{"environment", "production"}); got != 100 {
		t.Errorf("after the edit: PizzaShackAPI limit %d, want 100 (the other file, merged again)", got)
	}
}
