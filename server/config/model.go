// Package config reads Sluice's rate-limit configuration: YAML files in envoyproxy/ratelimit's
// format, which load unchanged, plus Sluice's additions.
//
// # How it works
//
// A file holds one domain and a tree of descriptors:
//
//	domain: apim
//	over_limit_response:              # Sluice: optional body and headers of a refusal
//	  body: '{"fault":{"code":900801}}'
//	  headers: {Content-Type: application/json}
//	descriptors:
//	  - key: api                      # required
//	    value: PizzaShackAPI:1.0.0    # optional: exact value, or a pattern where each "*" is any text
//	    share_threshold: true         # with a "*" value: one counter for every matching value
//	    shadow_mode: true             # decide, count, report, but never refuse
//	    quota_mode: true              # envoy: refuses only when every quota-mode descriptor is over
//	    metadata: {service: {name: a}} # envoy: sent in the response's dynamic metadata when admitted
//	    detailed_metric: true         # envoy: per-value metrics (value_to_metric too)
//	    rate_limit:                   # envoy's form
//	      unit: second                # second, minute, hour, day, week, month, year
//	      requests_per_unit: 100      # 0 refuses everything (envoy's block list idiom)
//	      name: pizza                 # optional, for replaces
//	      replaces: [{name: other}]   # this limit drops the named limits from the same request
//	      lease: auto                 # Sluice: auto (default) or off, quota leases (docs/leases.md)
//	    rate_limits:                  # Sluice: several limits (instead of rate_limit)
//	      - {window: 10s, requests: 50, buckets: 20}
//	      - {unit: hour, requests: 10000}
//	    descriptors: [...]            # nested descriptors, same shape
//
// Units are fixed lengths: second 1s, minute 60s, hour 3600s, day 24h, week 7 days,
// month 30 days, year 365 days. Every limit, given by unit or by window (any Go duration of
// at least 1ms), is a sliding window of that length split into buckets (default 10, 1..3600).
// rate_limit: {unlimited: true} marks a descriptor as known but never limited.
//
// Parse checks one file strictly (unknown keys, wrong types, duplicates) and reports every
// problem with file, line and field path as [Problems]. Load reads a file or a directory into
// a [Set]; Watch reloads it when the files change. A loaded Set is immutable, so any number
// of goroutines may call [Domain.Match] while a reload builds the next one.
package config

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"time"
)

// Kind is the kind of a limit: what it counts.
type Kind uint8

// The limit kinds.
const (
	KindRequests         Kind = iota + 1 // requests: rate_limit / rate_limits
	KindTotalTokens                      // token_limit total_tokens
	KindPromptTokens                     // token_limit prompt_tokens
	KindCompletionTokens                 // token_limit completion_tokens
)

// IsTokens reports whether the kind counts tokens.
func (k Kind) IsTokens() bool { return k >= KindTotalTokens && k <= KindCompletionTokens }

// String names the kind as the config writes it.
func (k Kind) String() string {
	switch k {
	case KindRequests:
		return "requests"
	case KindTotalTokens:
		return "total_tokens"
	case KindPromptTokens:
		return "prompt_tokens"
	case KindCompletionTokens:
		return "completion_tokens"
	}
	return "unknown"
}

// idPrefix is the part of a limit ID that names its kind.
func (k Kind) idPrefix() string {
	switch k {
	case KindRequests:
		return "r"
	case KindTotalTokens:
		return "t"
	case KindPromptTokens:
		return "p"
	case KindCompletionTokens:
		return "c"
	}
	return "?"
}

// Default and bounds of a limit's bucket count.
const (
	DefaultBuckets = 10
	MaxBuckets     = 3600
	MinWindow      = time.Millisecond
)

// MaxRequests is the largest count a limit may have: counters run in Redis Lua, whose
// numbers are doubles, exact up to 2^53.
const MaxRequests = 1<<53 - 1

// Limit is one sliding-window limit on a descriptor.
type Limit struct {
	Kind     Kind
	Name     string // `name`, may be empty
	Window   time.Duration
	Buckets  int    // configured, or DefaultBuckets
	Requests uint64 // the amount allowed per window, in requests or tokens; 0 refuses all
	Unit     string // "second".."year" when given as unit, "" when given as window
	Replaces []string
	// Lease says whether replicas may decide this limit from quota leases
	// (docs/leases.md): LeaseAuto, the zero value, unless the file says
	// `lease: off`. Token limits are never leased.
	Lease LeaseMode
	// ID is stable and unique among the limits of one descriptor, for use in Redis keys:
	// the kind, the window and the bucket count, like "r:1s:10". It does not change
	// with Requests, so raising a limit keeps its count.
	ID string
}

// LeaseMode is a request limit's `lease` setting.
type LeaseMode uint8

const (
	// LeaseAuto lets a replica lease the limit's units where its own demand
	// makes a lease pay (the default).
	LeaseAuto LeaseMode = iota
	// LeaseOff decides every call directly in Redis.
	LeaseOff
)

// String names the mode as the config writes it.
func (m LeaseMode) String() string {
	if m == LeaseOff {
		return "off"
	}
	return "auto"
}

// Rule is what a request descriptor matched. Its slices are shared: do not modify them.
type Rule struct {
	Limits    []Limit // empty when Unlimited
	Unlimited bool
	Shadow    bool // shadow_mode of the matched descriptor
	// Quota is quota_mode of the matched descriptor: its request limits count every
	// call that arrives while they are not over, and refuse a call only together
	// with every other quota-mode descriptor of it.
	Quota bool
	// Metadata is the descriptor's metadata, as JSON-like values (map[string]any,
	// []any, string, int64, float64, bool, nil); nil when it has none. Shared: do
	// not modify it.
	Metadata       map[string]any
	DetailedMetric bool // detailed_metric or value_to_metric of the matched descriptor
	// Path is the entries to put in the counter key: the request's own entries, except that
	// a share_threshold wildcard contributes its pattern ("foo*") instead of the value.
	// It may be the very slice passed to Match.
	Path []Entry
	// Stat names the matched config descriptor the way envoyproxy/ratelimit names its
	// stats: domain, then key or key_value per level, joined by dots.
	Stat string
}

// Entry is one key/value pair of a request descriptor.
type Entry struct{ Key, Value string }

// Header is a response header to send with a refusal.
type Header struct{ Name, Value string }

// Domain is one loaded domain: its refusal response and its descriptor tree.
// A Domain is immutable once loaded; do not modify its fields.
type Domain struct {
	Name string
	File string
	Line int // line of the domain key

	// OverLimitResponse is true when the file sets over_limit_response. Envoy's API
	// sends a refusal body and headers only then, as envoyproxy/ratelimit sends none.
	OverLimitResponse bool
	// OverLimitBody and OverLimitHeaders come from over_limit_response; empty when the file
	// does not set them, and the server uses its default.
	OverLimitBody    string
	OverLimitHeaders []Header // sorted by name

	// FailOpen is failure_mode: open — when the counter store is
	// unreachable, answer OK (marked as failed open) instead of the default
	// Unavailable, which leaves the choice to the gateway's own policy.
	FailOpen bool

	// Warnings are doubtful but accepted things, like a replaces naming no limit.
	Warnings Problems

	root *node
}

// Set is every domain of a load. It is immutable.
type Set struct {
	domains map[string]*Domain
	names   []string
	// loaded is the fingerprint of the files Load read the set from, so
	// Watch can start from it; zero for a set made by NewSet.
	loaded [sha256.Size]byte
	// options are those it was loaded with, for Watch to reload it the same way.
	options LoadOptions
}

// Domain returns the domain of that name.
func (s *Set) Domain(name string) (*Domain, bool) {
	if s == nil {
		return nil, false
	}
	d, ok := s.domains[name]
	return d, ok
}

// Domains returns the names of the domains, sorted.
func (s *Set) Domains() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Warnings returns the warnings of every domain.
func (s *Set) Warnings() Problems {
	var ws Problems
	for _, name := range s.Domains() {
		ws = append(ws, s.domains[name].Warnings...)
	}
	return ws
}

// NewSet builds a Set from parsed domains, for callers (and tests) that do not
// Load from disk. Domain names must be unique.
func NewSet(domains ...*Domain) (*Set, error) {
	seen := make(map[string]bool, len(domains))
	for _, d := range domains {
		if seen[d.Name] {
			return nil, fmt.Errorf("domain %q: defined twice", d.Name)
		}
		seen[d.Name] = true
	}
	return newSet(domains), nil
}

// newSet builds a Set from domains whose names are unique.
func newSet(domains []*Domain) *Set {
	s := &Set{domains: make(map[string]*Domain, len(domains))}
	for _, d := range domains {
		s.domains[d.Name] = d
		s.names = append(s.names, d.Name)
	}
	slices.Sort(s.names)
	return s
}
